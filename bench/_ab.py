"""Two variants of the ipshare app side by side, their load alternated in short blocks.

On this kind of shared VM the machine's speed drifts by tens of percent within minutes,
so two whole bench runs (one per version) cannot resolve a change of less than ~15 %.
Here both variants' servers run at once, on one PostgreSQL (a database each) and one
Kafka; the load goes to A for ``--seconds``, then to B, for ``--pairs`` pairs, and each
pair's ratio (A over B) is taken a few seconds apart, so the drift mostly cancels. It
prints each variant's blocks and the median and quartiles of the pairs' ratios of
incomes/s, service and PostgreSQL CPU per income, and p50 latency.

A variant is an app factory, ``module:function`` (``ipshare.app:create_app`` is the
service as it is); ``bench/_variants.py`` holds the ones the README's A/B figures used,
each the service with one change undone. A variant written ``PATHS@module:function``
puts ``PATHS`` (``:``-separated source folders) first on its servers' ``PYTHONPATH``:
another checkout's code (a ``git worktree`` of an earlier commit) against this one's,
on the same virtualenv. ``make bench`` does not run this file.

    UV_PYTHON_DOWNLOADS=never uv run python bench/_ab.py \\
        _variants:as_is _variants:gc_tuned --pairs 24 --seconds 2.5 --concurrency 16
    B=/tmp/before  # git worktree add --detach /tmp/before <commit>
    UV_PYTHON_DOWNLOADS=never uv run python bench/_ab.py \\
        "$B/libs/servicekit/src:$B/services/ipshare/src@ipshare.app:create_app" \\
        ipshare.app:create_app
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import income as bench

BENCH = Path(__file__).parent


def _quartiles(values: list[float]) -> str:
    ordered = sorted(values)
    n = len(ordered)
    return (f"{statistics.median(ordered):.3f} "
            f"(q1 {ordered[n // 4]:.3f}, q3 {ordered[(3 * n) // 4]:.3f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="app factory of variant A, module:function")
    parser.add_argument("b", help="app factory of variant B")
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=2.5, help="per block")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="servers per variant")
    args = parser.parse_args(argv)

    from ipshare.app import migrate

    root = bench.scratch_root("most-ab-")
    procs = bench.Processes(root=root)
    launchers: list[bench.Processes] = []
    try:
        bench.start_infrastructure(procs)
        key_dir = root / "dev-keys"
        token = bench.officer_token(key_dir)
        variants = []
        for i, factory in enumerate((args.a, args.b)):
            db = f"variant_{i}"
            procs.pg.create_database(db)
            migrate(procs.pg.url(db))
            ports = [bench.free_port() for _ in range(args.workers)]
            env = bench.service_env(procs, db, key_dir)
            paths, _, app = factory.rpartition("@")
            env["PYTHONPATH"] = os.pathsep.join(
                [*filter(None, paths.split(":")), str(BENCH), env.get("PYTHONPATH", "")])
            # Each variant's servers are a Processes of their own (stopped the same way);
            # they share the PostgreSQL and Kafka that ``procs`` stops last.
            own = bench.Processes(root=root / f"v{i}")
            own.service = bench.launch_servers(app, ports, env,
                                               root / f"variant-{i}.log")
            launchers.append(own)
            for port in ports:
                bench.wait_ready(own, port)
            own.workers = bench.server_pids(own.service.pid)
            variants.append((factory, own, ports, bench.seed(ports[0], token, 16)))
            bench.out(f"{factory}: servers on {ports}")

        seq = [0]
        for _, _, ports, agreements in variants:  # warm-up, not counted
            bench.run_load(ports, token, agreements, args.concurrency, 3.0, seq)
        blocks: dict[str, list[tuple[float, float, float, float]]] = {v[0]: [] for v in variants}
        for _ in range(args.pairs):
            for factory, own, ports, agreements in variants:
                procs.service, procs.workers = own.service, own.workers
                load, phase = bench.measure_cpu(procs, lambda p=ports, g=agreements: (
                    bench.run_load(p, token, g, args.concurrency, args.seconds, seq)))
                procs.service, procs.workers = None, []
                done = max(load.ok, 1)
                blocks[factory].append((
                    load.ok / load.seconds, phase.cpu["service"] * 1000 / done,
                    phase.cpu["postgres"] * 1000 / done,
                    statistics.median(load.latencies) * 1000 if load.latencies else 0.0))

        for factory, rows in blocks.items():
            bench.out(f"{factory}: incomes/s {' '.join(f'{r[0]:.0f}' for r in rows)}")
            bench.out(f"  service CPU ms/income {' '.join(f'{r[1]:.2f}' for r in rows)}")
        a, b = blocks[args.a], blocks[args.b]
        bench.out(f"pairs' ratios, {args.a} over {args.b} (median, quartiles), "
                  f"c={args.concurrency}:")
        for i, name in enumerate(("incomes/s", "service CPU per income",
                                  "PostgreSQL CPU per income", "p50 latency")):
            ratios = [x[i] / y[i] for x, y in zip(a, b, strict=True) if y[i]]
            bench.out(f"  {name}: {_quartiles(ratios)}")
        return 0
    finally:
        for own in launchers:
            own.stop()
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
