"""A pilot's supervised life over HTTP, with the scheduler on the app's fixed clock: every
supervision event the sandbox emits, for the API, scheduler and event-contract tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from sandbox.scheduler import Scheduler
from servicekit.clock import FixedClock, business_date

from .world import World


def morning(day: date) -> datetime:
    """09:00 in Hanoi on ``day``."""
    return datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)


def today(clock: FixedClock) -> date:
    return business_date(clock.now())


def run_scheduler(client: TestClient, runner: str = "test") -> dict[str, int | None]:
    return Scheduler(client.app.state.kit, runner=runner).run()


def report(period: str, **change: Any) -> dict[str, Any]:
    body = {"period": period, "participants": 800, "transactions_vnd": 2_000_000_000,
            "largest_transaction_vnd": 9_000_000, "regions": ["HN"],
            "kpis": {"default_rate_pct": 1.4}, "complaints": 2}
    body.update(change)
    return body


EXIT = {"outcome": "graduate", "final_report": "ran within its limits",
        "lessons": "escrow audits work", "recommendations": ["license P2P lending"]}


def run_a_pilots_life(w: World, clock: FixedClock, client: TestClient) -> dict[str, Any]:
    """From approval to exit, with every supervision step; returns the ids it made."""
    start = today(clock)
    pilot_id = w.approved(start)["pilot_id"]  # starts in 30 days, ends 365 days later
    pending = w.submitted()  # its decision falls overdue
    terminated = w.approved(start, starts_on=start.isoformat())["pilot_id"]
    p = f"/v1/pilots/{pilot_id}"

    clock.set(morning(start + timedelta(days=30)))
    run_scheduler(client)  # starts it
    first_due = date.fromisoformat(w.call("GET", p, w.owner, 200)["next_report_due_on"])
    clock.set(morning(first_due + timedelta(days=1)))
    run_scheduler(client)  # its first report is overdue
    owed = _period_of(date.fromisoformat(w.call("GET", p, w.owner, 200)["starts_on"]))
    w.call("POST", f"{p}/reports", w.owner, 201,
           report(owed, participants=1200, regions=["HN", "DN"]))
    w.call("POST", f"{p}/incidents", w.owner, 201,
           {"severity": "low", "description": "a slow page"})
    w.call("POST", f"{p}/incidents", w.r1, 201,
           {"severity": "critical", "description": "escrow account frozen"})
    w.call("POST", f"{p}/resume", w.r2, 200, {"reason": "escrow released"})
    w.call("POST", f"{p}/suspend", w.r2, 200, {"reason": "second audit"})
    w.call("POST", f"{p}/resume", w.r2, 200, {"reason": "audit passed"})
    pilot = w.call("GET", p, w.owner, 200)
    new_end = date.fromisoformat(pilot["ends_on"]) + timedelta(days=90)
    w.call("POST", f"{p}/extend", w.r2, 200,
           {"ends_on": new_end.isoformat(), "reason": "more data needed"})
    w.call("POST", f"{p}/adjust", w.r2, 200,
           {"conditions": ["weekly escrow audit"], "reason": "tighter audit"})
    w.call("POST", f"/v1/pilots/{terminated}/terminate", w.r2, 200,
           {"reason": "licence obtained elsewhere"})

    clock.set(morning(new_end + timedelta(days=1)))
    run_scheduler(client)  # the decision is overdue, the pilot expired
    w.call("POST", f"{p}/exit", w.owner, 201, EXIT)
    w.call("POST", f"{p}/exit/accept", w.r2, 200, {"note": "a model pilot"})
    return {"pilot": pilot_id, "pending": pending["id"], "terminated": terminated}


def _period_of(starts_on: date) -> str:
    """The quarter containing ``starts_on`` (the fintech profile reports quarterly)."""
    return f"{starts_on.year}-Q{(starts_on.month - 1) // 3 + 1}"

