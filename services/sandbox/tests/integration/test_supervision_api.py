"""Supervising a pilot over HTTP on PostgreSQL: every transition and who may make it, the
numbered decisions, and bad input answered with a problem naming the rule, nothing
changed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from sandbox.models import DecisionRow, IncidentRow, ReportRow
from servicekit.clock import FixedClock

from .pilot_life import EXIT, morning, report
from .world import SECRET, World

pytestmark = pytest.mark.postgres

TODAY = date(2026, 11, 23)
FIRST_PERIOD = "2026-Q4"  # the pilot starts today, reports quarterly
AFTER_Q4 = date(2027, 1, 3)


@pytest.fixture
def w(client, tokens) -> World:
    return World(client, tokens)


@pytest.fixture
def pilot(w: World, clock: FixedClock) -> str:
    """An active fintech pilot: HN only, 1000 participants, 10M per transaction; requested
    HN and HCM, 5000 participants, 50M. Approved a minute ago (decisions are listed in
    the order they were taken)."""
    approved = w.approved(TODAY, starts_on=TODAY.isoformat())["pilot_id"]
    clock.advance(timedelta(minutes=1))
    return approved


def problem(w: World, method: str, path: str, who: dict, status: int,
            body: Any = None) -> dict[str, Any]:
    response = w.c.request(method, path, headers=who, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def state(w: World, pilot_id: str) -> dict[str, Any]:
    """What a refused command must leave as it was: the pilot, its history, decisions."""
    detail = w.call("GET", f"/v1/pilots/{pilot_id}", w.pm, 200)
    history = w.call("GET", f"/v1/pilots/{pilot_id}/history", w.pm, 200)["items"]
    return {"pilot": detail, "history": len(history)}


def count(db: str, table, pilot_id: str) -> int:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)
                                .where(table.c.pilot_id == pilot_id)).scalar_one()
    finally:
        engine.dispose()


# --- reports -------------------------------------------------------------------------------

def test_the_firm_files_a_report_and_a_figure_over_a_limit_is_a_breach(
        w: World, pilot: str, clock: FixedClock) -> None:
    clock.set(morning(AFTER_Q4))
    filed = w.call("POST", f"/v1/pilots/{pilot}/reports", w.owner, 201,
                   report(FIRST_PERIOD, participants=1500, largest_transaction_vnd=20_000_000,
                          regions=["HN", "HCM"]))
    assert filed["pilot_id"] == pilot and filed["period"] == FIRST_PERIOD
    assert filed["breaches"] == [
        {"limit": "max_participants", "allowed": 1000, "reported": 1500},
        {"limit": "max_transaction_vnd", "allowed": 10_000_000, "reported": 20_000_000},
        {"limit": "regions", "allowed": ["HN"], "reported": ["HCM"]}]
    assert filed["due_on"] == "2027-01-15" and filed["filed_late"] is False
    after = w.call("GET", f"/v1/pilots/{pilot}", w.owner, 200)
    assert after["breaches_count"] == 3 and after["last_report_period"] == FIRST_PERIOD
    assert after["next_report_due_on"] == "2027-04-15"  # 2027-Q1 is owed next
    assert [r["id"] for r in after["reports"]] == [filed["id"]]


def test_only_the_pilots_firm_files_its_reports(w: World, pilot: str,
                                                clock: FixedClock) -> None:
    clock.set(morning(AFTER_Q4))
    body = report(FIRST_PERIOD)
    w.call("POST", f"/v1/pilots/{pilot}/reports", w.other_firm, 404, body)
    w.call("POST", f"/v1/pilots/{pilot}/reports", w.r1, 403, body)
    w.call("POST", f"/v1/pilots/{pilot}/reports", None, 401, body)
    w.call("POST", "/v1/pilots/no-such-pilot/reports", w.owner, 404, body)


@pytest.mark.parametrize("change, status, rule", [
    ({"period": "2026-11"}, 422, "quarterly"),
    ({"period": "2027-Q1"}, 422, "once it is over"),
    ({"period": "2025-Q4"}, 422, "outside the pilot's run"),
    ({"period": "2026-Q9"}, 422, "neither a quarter"),
    ({"largest_transaction_vnd": None}, 422, "largest_transaction_vnd is required"),
    ({"largest_transaction_vnd": 3_000_000_000}, 422, "one transaction of the period"),
    ({"participants": -1}, 422, "participants"),
    ({"kpis": {"rate": "high"}}, 422, "kpis"),
    ({"regions": ["HN", "HN"]}, 422, "appears twice"),
    ({"budget_vnd": 5}, 422, "budget_vnd"),
])
def test_a_bad_report_is_refused_naming_the_rule_and_stores_nothing(
        w: World, pilot: str, clock: FixedClock, sandbox_db: str, change, status,
        rule) -> None:
    clock.set(morning(AFTER_Q4))
    before = state(w, pilot)
    body = {**report(FIRST_PERIOD), **change}
    body = {k: v for k, v in body.items() if v is not None}
    found = problem(w, "POST", f"/v1/pilots/{pilot}/reports", w.owner, status, body)
    assert rule in found["detail"] + str(found.get("errors", ""))
    assert state(w, pilot) == before and count(sandbox_db, ReportRow.__table__, pilot) == 0


def test_a_period_is_reported_once(w: World, pilot: str, clock: FixedClock,
                                   sandbox_db: str) -> None:
    clock.set(morning(AFTER_Q4))
    w.call("POST", f"/v1/pilots/{pilot}/reports", w.owner, 201, report(FIRST_PERIOD))
    before = state(w, pilot)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/reports", w.owner, 409,
                    report(FIRST_PERIOD, participants=1))
    assert "one report per period" in found["detail"]
    assert state(w, pilot) == before and count(sandbox_db, ReportRow.__table__, pilot) == 1


def test_a_repeated_report_with_its_idempotency_key_replays_the_first_answer(
        w: World, pilot: str, clock: FixedClock, sandbox_db: str) -> None:
    clock.set(morning(AFTER_Q4))
    keyed = {**w.owner, "Idempotency-Key": "report-2026-Q4"}
    first = w.c.post(f"/v1/pilots/{pilot}/reports", headers=keyed, json=report(FIRST_PERIOD))
    again = w.c.post(f"/v1/pilots/{pilot}/reports", headers=keyed, json=report(FIRST_PERIOD))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert count(sandbox_db, ReportRow.__table__, pilot) == 1


def test_reports_on_a_suspended_or_exited_pilot_are_refused(w: World, pilot: str,
                                                            clock: FixedClock) -> None:
    clock.set(morning(AFTER_Q4))
    w.call("POST", f"/v1/pilots/{pilot}/suspend", w.r1, 200, {"reason": "audit"})
    found = problem(w, "POST", f"/v1/pilots/{pilot}/reports", w.owner, 409,
                    report(FIRST_PERIOD))
    assert "suspended pilot owes no report" in found["detail"]
    w.call("POST", f"/v1/pilots/{pilot}/resume", w.r1, 200, {"reason": "audit passed"})
    w.call("POST", f"/v1/pilots/{pilot}/exit", w.owner, 201, EXIT)
    w.call("POST", f"/v1/pilots/{pilot}/exit/accept", w.r2, 200, {"note": "ok"})
    found = problem(w, "POST", f"/v1/pilots/{pilot}/reports", w.owner, 409,
                    report(FIRST_PERIOD))
    assert "pilot is exited" in found["detail"]


def test_a_pilots_reports_are_listed_newest_first_page_by_page(
        w: World, client: TestClient, pilot: str, clock: FixedClock) -> None:
    ids = []
    for period, day in (("2026-Q4", AFTER_Q4), ("2027-Q1", date(2027, 4, 2)),
                        ("2027-Q2", date(2027, 7, 2))):
        clock.set(morning(day))
        ids.append(w.call("POST", f"/v1/pilots/{pilot}/reports", w.owner, 201,
                          report(period))["id"])
    first = w.call("GET", f"/v1/pilots/{pilot}/reports?limit=2", w.owner, 200)
    rest = w.call("GET", f"/v1/pilots/{pilot}/reports?limit=2&cursor={first['next_cursor']}",
                  w.pm, 200)
    assert [r["id"] for r in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    w.call("GET", f"/v1/pilots/{pilot}/reports", w.other_firm, 404)
    w.call("GET", f"/v1/pilots/{pilot}/reports", w.researcher, 403)
    assert client.get(f"/v1/register/{pilot}").json().get("reports") is None


# --- incidents -----------------------------------------------------------------------------

def test_an_incident_shows_whether_it_was_reported_within_the_sectors_deadline(
        w: World, pilot: str, clock: FixedClock) -> None:
    now = morning(date(2026, 12, 10))
    clock.set(now)
    late = w.call("POST", f"/v1/pilots/{pilot}/incidents", w.owner, 201,
                  {"severity": "high", "description": f"data leak {SECRET}",
                   "occurred_at": (now - timedelta(hours=30)).isoformat()})
    clock.advance(timedelta(minutes=1))
    prompt = w.call("POST", f"/v1/pilots/{pilot}/incidents", w.r1, 201,
                    {"severity": "low", "description": "slow payouts",
                     "occurred_at": "2026-12-10T07:30:00+07:00"})
    assert late["reported_in_time"] is False and prompt["reported_in_time"] is True
    assert late["reported_at"] == "2026-12-10T02:00:00Z"
    assert prompt["occurred_at"] == "2026-12-10T00:30:00Z"
    listed = w.call("GET", f"/v1/pilots/{pilot}/incidents?limit=1", w.owner, 200)
    assert [i["id"] for i in listed["items"]] == [prompt["id"]] and listed["next_cursor"]
    assert w.call("GET", f"/v1/pilots/{pilot}", w.pm, 200)["status"] == "active"
    assert SECRET not in w.c.get(f"/v1/register/{pilot}").text


def test_a_critical_incident_suspends_the_pilot_at_once(w: World, pilot: str) -> None:
    incident = w.call("POST", f"/v1/pilots/{pilot}/incidents", w.owner, 201,
                      {"severity": "critical", "description": "escrow account frozen"})
    assert incident["suspended_pilot"] is True
    after = w.call("GET", f"/v1/pilots/{pilot}", w.owner, 200)
    assert after["status"] == "suspended"
    assert after["suspension_incident_id"] == incident["id"]
    assert incident["id"] in after["suspension_reason"]
    assert after["next_report_due_on"] is None  # a suspended pilot owes no report
    entry = w.call("GET", f"/v1/pilots/{pilot}/history", w.pm, 200)["items"][-1]
    assert (entry["action"], entry["from_status"], entry["to_status"]) == (
        "incident", "active", "suspended")


@pytest.mark.parametrize("body, rule", [
    ({"severity": "catastrophic", "description": "x"}, "severity"),
    ({"severity": "low", "description": "x", "occurred_at": "2030-01-01T00:00:00Z"},
     "after the report"),
    ({"severity": "low", "description": "x", "occurred_at": "2026-11-23"}, "RFC 3339"),
    ({"severity": "low", "description": "  "}, "description"),
])
def test_a_bad_incident_is_refused_naming_the_rule(w: World, pilot: str, sandbox_db: str,
                                                   body, rule) -> None:
    before = state(w, pilot)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/incidents", w.owner, 422, body)
    assert rule in found["detail"] + str(found.get("errors", ""))
    assert state(w, pilot) == before and count(sandbox_db, IncidentRow.__table__, pilot) == 0


def test_incidents_are_reported_by_the_firm_or_a_reviewer_only(w: World, pilot: str) -> None:
    body = {"severity": "low", "description": "x"}
    w.call("POST", f"/v1/pilots/{pilot}/incidents", w.other_firm, 404, body)
    w.call("POST", f"/v1/pilots/{pilot}/incidents", w.pm, 403, body)
    w.call("POST", f"/v1/pilots/{pilot}/incidents", w.auditor, 403, body)


# --- the reviewers' decisions --------------------------------------------------------------

def test_suspension_and_termination_are_numbered_decisions_shown_on_the_register(
        w: World, client: TestClient, pilot: str, clock: FixedClock) -> None:
    suspended = w.call("POST", f"/v1/pilots/{pilot}/suspend", w.r1, 200,
                       {"reason": "escrow shortfall"})
    clock.advance(timedelta(minutes=1))
    assert suspended["status"] == "suspended"
    assert suspended["suspension_reason"] == "escrow shortfall"
    resumed = w.call("POST", f"/v1/pilots/{pilot}/resume", w.r2, 200,
                     {"reason": "shortfall covered"})
    assert resumed["status"] == "active" and resumed["suspension_reason"] is None
    assert resumed["next_report_due_on"] == "2027-01-15"
    ended = w.call("POST", f"/v1/pilots/{pilot}/terminate", w.r1, 200,
                   {"reason": "repeated breaches"})
    assert ended["status"] == "terminated" and ended["terminated_on"] == TODAY.isoformat()
    kinds = [(d["kind"], d["decision_no"].split("/", 1)[1]) for d in ended["decisions"]]
    assert kinds == [("approval", "QĐ-TNKS-SBV"), ("suspension", "QĐ-TNKS-SBV"),
                     ("termination", "QĐ-TNKS-SBV")]
    numbers = [int(d["decision_no"].split("/")[0]) for d in ended["decisions"]]
    assert numbers == sorted(set(numbers))
    entry = client.get(f"/v1/register/{pilot}").json()
    assert entry["status"] == "terminated"
    assert [d["kind"] for d in entry["decisions"]] == ["approval", "suspension", "termination"]
    history = w.call("GET", f"/v1/pilots/{pilot}/history", w.owner, 200)["items"]
    assert [(h["action"], h["to_status"], h["reason"]) for h in history[-3:]] == [
        ("suspend", "suspended", "escrow shortfall"), ("resume", "active", "shortfall covered"),
        ("terminate", "terminated", "repeated breaches")]


def test_resuming_a_terminated_pilot_is_refused_and_changes_nothing(w: World,
                                                                    pilot: str) -> None:
    w.call("POST", f"/v1/pilots/{pilot}/terminate", w.r1, 200, {"reason": "fraud"})
    before = state(w, pilot)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/resume", w.r1, 409,
                    {"reason": "second chance"})
    assert "terminated pilot is never resumed" in found["detail"]
    assert state(w, pilot) == before


def test_only_a_reviewer_outside_the_firm_decides(w: World, pilot: str) -> None:
    reason = {"reason": "x"}
    for path in ("suspend", "terminate"):
        w.call("POST", f"/v1/pilots/{pilot}/{path}", w.owner, 403, reason)
        w.call("POST", f"/v1/pilots/{pilot}/{path}", w.pm, 403, reason)
    before = state(w, pilot)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/suspend", w.conflicted, 409, reason)
    assert "conflict of interest" in found["detail"]
    assert state(w, pilot) == before
    w.call("POST", "/v1/pilots/no-such-pilot/suspend", w.r1, 404, reason)


def test_an_illegal_transition_names_the_status(w: World, pilot: str) -> None:
    found = problem(w, "POST", f"/v1/pilots/{pilot}/resume", w.r1, 409, {"reason": "x"})
    assert "pilot is active" in found["detail"]
    approved = w.approved(TODAY)["pilot_id"]  # starts in 30 days
    found = problem(w, "POST", f"/v1/pilots/{approved}/suspend", w.r1, 409, {"reason": "x"})
    assert "pilot is approved" in found["detail"]


def test_an_extension_within_the_profile_moves_the_end_date(w: World, client: TestClient,
                                                            pilot: str) -> None:
    current = date.fromisoformat(w.call("GET", f"/v1/pilots/{pilot}", w.pm, 200)["ends_on"])
    first = current + timedelta(days=300)
    extended = w.call("POST", f"/v1/pilots/{pilot}/extend", w.r1, 200,
                      {"ends_on": first.isoformat(), "reason": "more data"})
    assert extended["ends_on"] == first.isoformat() and extended["extensions_used"] == 1
    assert extended["original_ends_on"] == current.isoformat()
    assert client.get(f"/v1/register/{pilot}").json()["ends_on"] == first.isoformat()


@pytest.mark.parametrize("ends_on, status, rule", [
    ("2027-01-01", 422, "after the current end date"),
    ("2029-06-30", 422, "at most 12 months"),
    ("2027-13-01", 422, "ends_on"),
])
def test_an_extension_out_of_order_or_past_the_profile_is_refused(
        w: World, pilot: str, ends_on, status, rule) -> None:
    before = state(w, pilot)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/extend", w.r1, status,
                    {"ends_on": ends_on, "reason": "more"})
    assert rule in found["detail"] + str(found.get("errors", ""))
    assert state(w, pilot) == before


def test_a_third_fintech_extension_is_refused(w: World, pilot: str) -> None:
    ends = date.fromisoformat(w.call("GET", f"/v1/pilots/{pilot}", w.pm, 200)["ends_on"])
    for _ in range(2):
        ends += timedelta(days=30)
        w.call("POST", f"/v1/pilots/{pilot}/extend", w.r1, 200,
               {"ends_on": ends.isoformat(), "reason": "more"})
    found = problem(w, "POST", f"/v1/pilots/{pilot}/extend", w.r1, 409,
                    {"ends_on": (ends + timedelta(days=30)).isoformat(), "reason": "more"})
    assert "allows 2 extension" in found["detail"]


def test_limits_are_adjusted_within_the_requested_scope_only(w: World, client: TestClient,
                                                             pilot: str) -> None:
    before = state(w, pilot)
    wider = {"limits": {"regions": ["HN", "DN"], "max_participants": 100},
             "reason": "growth"}
    found = problem(w, "POST", f"/v1/pilots/{pilot}/adjust", w.r1, 422, wider)
    assert "no wider than the requested scope" in found["detail"] and "DN" in found["detail"]
    found = problem(w, "POST", f"/v1/pilots/{pilot}/adjust", w.r1, 422,
                    {"limits": {"regions": ["HN"], "max_participants": 6000,
                                "max_transaction_vnd": 1}, "reason": "growth"})
    assert "exceeds the requested 5000" in found["detail"]
    found = problem(w, "POST", f"/v1/pilots/{pilot}/adjust", w.r1, 422, {"reason": "none"})
    assert "changes the conditions or the limits" in found["detail"]
    assert state(w, pilot) == before
    limits = {"regions": ["HN", "HCM"], "max_participants": 5000,
              "max_transaction_vnd": 50_000_000}
    adjusted = w.call("POST", f"/v1/pilots/{pilot}/adjust", w.r1, 200,
                      {"limits": limits, "conditions": ["weekly escrow audit"],
                       "reason": "sound first quarter"})
    assert adjusted["limits"] == limits and adjusted["conditions"] == ["weekly escrow audit"]
    entry = client.get(f"/v1/register/{pilot}").json()
    assert entry["scope"] == limits and entry["conditions"] == ["weekly escrow audit"]


# --- exit ----------------------------------------------------------------------------------

def test_a_graduation_gets_a_numbered_certificate_shown_on_the_register(
        w: World, client: TestClient, pilot: str, sandbox_db: str) -> None:
    w.call("POST", f"/v1/pilots/{pilot}/exit/accept", w.r1, 409, {"note": "early"})
    w.call("POST", f"/v1/pilots/{pilot}/exit", w.r1, 403, EXIT)
    filed = w.call("POST", f"/v1/pilots/{pilot}/exit", w.owner, 201,
                   {**EXIT, "kpi_results": {"default_rate_pct": 1.1}})
    assert (filed["status"], filed["outcome"], filed["certificate_no"]) == (
        "filed", "graduate", None)
    found = problem(w, "POST", f"/v1/pilots/{pilot}/exit", w.owner, 409, EXIT)
    assert "one per pilot" in found["detail"]
    w.call("POST", f"/v1/pilots/{pilot}/exit/accept", w.conflicted, 409, {"note": "mine"})
    exited = w.call("POST", f"/v1/pilots/{pilot}/exit/accept", w.r1, 200,
                    {"note": "a model pilot"})
    assert exited["status"] == "exited" and exited["exit_outcome"] == "graduate"
    assert exited["certificate_no"].endswith("/GCN-TNKS-SBV")
    assert exited["exit"]["status"] == "accepted"
    assert exited["exit"]["certificate_no"] == exited["certificate_no"]
    assert exited["decisions"][-1]["kind"] == "exit_acceptance"
    entry = client.get(f"/v1/register/{pilot}").json()
    assert entry["certificate_no"] == exited["certificate_no"]
    assert entry["status"] == "exited" and "final_report" not in client.get(
        f"/v1/register/{pilot}").text
    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as conn:
            kinds = conn.execute(select(DecisionRow.kind).where(DecisionRow.pilot_id == pilot)
                                 .order_by(DecisionRow.decided_at)).scalars().all()
    finally:
        engine.dispose()
    assert kinds == ["approval", "exit_acceptance"]


def test_a_bad_exit_report_is_refused_naming_the_field(w: World, pilot: str) -> None:
    before = state(w, pilot)
    for change, rule in (({"outcome": "pivot"}, "outcome"), ({"lessons": " "}, "lessons"),
                         ({"recommendations": [""]}, "recommendations")):
        found = problem(w, "POST", f"/v1/pilots/{pilot}/exit", w.owner, 422,
                        {**EXIT, **change})
        assert rule in str(found.get("errors", "")) + found["detail"]
    assert state(w, pilot) == before
