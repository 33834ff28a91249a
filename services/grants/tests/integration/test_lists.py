"""A list reads its page in a fixed number of statements, however long the page: no
query per row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session

from grants.models import (
    ApplicationRow,
    BreachRow,
    CallRow,
    GrantRow,
    MilestoneRow,
    TeamMemberRow,
)

pytestmark = pytest.mark.postgres

AT = datetime(2026, 11, 1, tzinfo=UTC)


def seed_grants(url: str, n: int) -> None:
    """``n`` awarded grants of one call, each with a two-person team, three milestones
    and a breach."""
    with Session(create_engine(url)) as session:
        session.add(CallRow(id="call-1", agency_id="MOST", title="Call", description="",
                            budget_vnd=10**12, max_award_vnd=10**9, opens_at=AT,
                            closes_at=AT + timedelta(days=90), min_reviews=1, status="closed",
                            created_by="pm-1", created_at=AT, updated_at=AT))
        session.flush()
        for i in range(n):
            at = AT + timedelta(minutes=i)
            app_id, grant_id = f"app-{i:03}", f"grant-{i:03}"
            session.add(ApplicationRow(
                id=app_id, call_id="call-1", agency_id="MOST", applicant_id="r-lead",
                institution_id="HUST", title=f"Project {i}", abstract="", requested_vnd=900,
                risk_level="low", status="approved", reviews_needed=1, created_at=at,
                updated_at=at))
            session.flush()
            session.add_all([TeamMemberRow(application_id=app_id, researcher_id=r, position=p,
                                           name=r, role="member", contribution_bp=5000)
                             for p, r in enumerate(["r-lead", "r-member"])])
            session.add(GrantRow(id=grant_id, application_id=app_id, call_id="call-1",
                                 agency_id="MOST", institution_id="HUST", awarded_vnd=900,
                                 status="active", created_at=at, updated_at=at))
            session.flush()
            session.add_all([MilestoneRow(
                id=f"{grant_id}-m{s}", grant_id=grant_id, seq=s, title=f"M{s}",
                deliverable="d", verification="v", due_date=date(2027, 1 + s, 1),
                tranche_bp=3333 + (s == 2), tranche_vnd=300, status="pending")
                for s in range(3)])
            session.add(BreachRow(id=f"{grant_id}-b", grant_id=grant_id, kind="misuse",
                                  description="found", recorded_by="pm-1", created_at=at))
        session.commit()


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs inside the block."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_page_of_50_grants_takes_as_many_statements_as_a_page_of_5(client, tokens,
                                                                      grants_db):
    seed_grants(grants_db, 50)
    auditor = tokens.headers("aud-1", "auditor", org="SAV")
    engine = client.app.state.kit.engine

    with statements(engine) as five:
        small = client.get("/v1/grants", headers=auditor, params={"limit": 5})
    with statements(engine) as fifty:
        page = client.get("/v1/grants", headers=auditor, params={"limit": 50})

    assert small.status_code == page.status_code == 200
    items = page.json()["items"]
    assert len(items) == 50
    assert {(len(g["team"]), len(g["milestones"]), len(g["breaches"])) for g in items} == {
        (2, 3, 1)}
    assert items[0]["title"] == "Project 49"  # newest first
    assert len(fifty) == len(five) <= 6, fifty


def test_a_page_of_50_applications_takes_as_many_statements_as_a_page_of_5(client, tokens,
                                                                            grants_db):
    auditor = tokens.headers("aud-1", "auditor", org="SAV")
    engine = client.app.state.kit.engine
    if not client.get("/v1/applications", headers=auditor).json()["items"]:
        seed_grants(grants_db, 50)  # the module's database, as the test above left it

    with statements(engine) as five:
        small = client.get("/v1/applications", headers=auditor, params={"limit": 5})
    with statements(engine) as fifty:
        page = client.get("/v1/applications", headers=auditor, params={"limit": 50})

    assert small.status_code == page.status_code == 200
    items = page.json()["items"]
    assert len(items) == 50 and {len(a["team"]) for a in items} == {2}
    assert len(fifty) == len(five), fifty
