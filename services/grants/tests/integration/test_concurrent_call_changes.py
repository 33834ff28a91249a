"""Commands on a call's applications racing a change of the call itself (PostgreSQL): each
lands wholly before or wholly after it, never on the call it no longer finds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, select, update

from grants.models import CallRow

from .conftest import Desk

pytestmark = pytest.mark.postgres


@contextmanager
def changing_call(url: str, call_id: str, **values: str) -> Iterator[None]:
    """The call's own command in flight: its row locked and changed to ``values``, as
    close_call and cancel_call leave it, committed when the block ends."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(select(CallRow.id).where(CallRow.id == call_id).with_for_update())
            conn.execute(update(CallRow).where(CallRow.id == call_id).values(**values))
            try:
                yield
            finally:
                conn.commit()
    finally:
        engine.dispose()


def racing(command: Callable[[], int], change: Callable[[], object]) -> int:
    """``command``'s status, sent while ``change`` holds the call and committed after."""
    with ThreadPoolExecutor(1) as pool:
        with change():
            sent = pool.submit(command)
            time.sleep(1.0)  # the command has reached the call by now
        return sent.result()


def test_a_submission_racing_the_calls_closing_is_refused_once_it_closed(desk: Desk):
    call = desk.call()
    app = desk.draft(call["id"])

    status = racing(
        lambda: desk.c.post(f"/v1/applications/{app['id']}/submit",
                            headers=desk.lead).status_code,
        lambda: changing_call(desk.url, call["id"], status="closed"))

    assert status == 409  # it waited for the close, then found the call closed
    assert desk.ok("GET", f"/v1/applications/{app['id']}", desk.lead)["status"] == "draft"


def test_an_assignment_racing_the_calls_cancellation_is_refused(desk: Desk):
    call = desk.call(review_mode="assigned")
    app = desk.submitted(call["id"])

    status = racing(
        lambda: desk.c.post(f"/v1/applications/{app['id']}/assignments", headers=desk.pm,
                            json={"reviewer_id": "rev-1", "reviewer_org": "VAST",
                                  "name": "Reviewer", "due_on": "2027-01-15"}).status_code,
        lambda: changing_call(desk.url, call["id"], status="cancelled",
                              cancelled_from="open"))

    assert status == 409  # no open assignment is left on the cancelled call
    assert desk.ok("GET", "/v1/assignments", desk.pm,
                   params={"application_id": app["id"]})["items"] == []
