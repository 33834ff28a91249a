from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from servicekit.clock import FixedClock, as_utc
from servicekit.idempotency import KEY_PATTERN, MAX_KEY_LENGTH, _canonical_body, valid_key
from servicekit.paging import decode_cursor, encode_cursor
from servicekit.problems import Invalid
from servicekit.settings import ServiceSettings


def test_dev_profile_defaults_to_a_sqlite_file_per_service():
    s = ServiceSettings(service_name="grants")
    assert s.database_url == "sqlite:///var/grants.db"
    assert s.topic == "grants.events.v1"
    assert s.group_id == "grants"


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # dev issuer, no key, sqlite, no kafka
        {"jwt_issuer": "https://id.most.gov.vn", "jwt_public_key_file": Path("k.pem"),
         "kafka_bootstrap": "k:9092"},  # still sqlite
        {"jwt_issuer": "https://id.most.gov.vn", "database_url": "postgresql://db/g",
         "kafka_bootstrap": "k:9092"},  # no public key
    ],
)
def test_prod_profile_refuses_development_shortcuts(overrides):
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="grants", profile="prod", **overrides)


@pytest.mark.parametrize("setting", [
    {"audit_checkpoint_seconds": 0},  # the checkpoint thread would spin on the database
    {"relay_poll_seconds": 0},  # the idle relay would spin on the outbox
    {"relay_batch_size": 0},  # the relay would never send a row
    {"relay_linger_seconds": -1},
])
def test_background_intervals_that_would_spin_or_stall_are_refused(setting):
    with pytest.raises(ValidationError):
        ServiceSettings(service_name="grants", **setting)


def test_fixed_clock_moves_only_when_told():
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == clock.now()
    assert clock.advance(timedelta(days=1)) == datetime(2026, 1, 2, tzinfo=UTC)


def test_naive_database_datetimes_are_read_as_utc():
    assert as_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_cursors_round_trip_and_foreign_cursors_are_422():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert decode_cursor(encode_cursor(now, "id-1"), 2) == [now.isoformat(), "id-1"]
    with pytest.raises(Invalid):
        decode_cursor("not-a-cursor!", 2)
    with pytest.raises(Invalid):
        decode_cursor(encode_cursor("only-one"), 2)


def test_idempotency_hash_ignores_key_order_and_whitespace():
    assert _canonical_body(b'{"a": 1, "b": [1,2]}') == _canonical_body(b'{"b":[1, 2],"a":1}')
    assert _canonical_body(b'{"a": 1}') != _canonical_body(b'{"a": 2}')


@pytest.mark.parametrize(("key", "valid"), [
    ("3f2c9a1e-7b4d-4e1a-9c2f-1d2e3f4a5b6c", True), ("a b", True), ("x" * MAX_KEY_LENGTH, True),
    ("", False), ("   ", False), ("x" * (MAX_KEY_LENGTH + 1), False), ("clé", False),
    ("a\tb", False)])
def test_an_idempotency_key_is_valid_exactly_when_the_document_says_so(key, valid):
    assert valid_key(key) is valid
    assert (re.fullmatch(KEY_PATTERN, key) is not None
            and 1 <= len(key) <= MAX_KEY_LENGTH) is valid


@pytest.mark.parametrize("newest_first", [True, False])
def test_keyset_pages_cover_every_row_once_in_either_order(tmp_path, newest_first):
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    from servicekit.paging import keyset_page

    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = "things"
        id = mapped_column(sa.String, primary_key=True)
        created_at = mapped_column(sa.DateTime, nullable=False)

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    Base.metadata.create_all(engine)
    t0 = datetime(2026, 11, 23, 9, 0)
    with Session(engine) as session:  # pairs share a time: ties go by id
        session.add_all(Thing(id=f"t{i}", created_at=t0 + timedelta(minutes=i // 2))
                        for i in range(7))
        session.commit()

        seen, cursor = [], None
        while True:
            page, cursor = keyset_page(session, sa.select(Thing), Thing.created_at, Thing.id,
                                       limit=2, cursor=cursor, newest_first=newest_first)
            seen += [t.id for t in page]
            if cursor is None:
                break
    expected = [f"t{i}" for i in range(7)]
    assert seen == (expected[::-1] if newest_first else expected)
