"""Releasing reviewer assignments an application no longer needs (it was withdrawn or
decided, or its call cancelled): shared by the applications and calls routers."""

from __future__ import annotations

from grants import events
from grants.repository import open_assignments, save_assignment
from servicekit.unit_of_work import UnitOfWork

AGGREGATE = "assignment"


def release_open(uow: UnitOfWork, reason: str, *, application_id: str | None = None,
                 call_id: str | None = None) -> int:
    """Release the open assignments of an application or of a whole call, each audited
    and announced (``assignment.released``); how many were released."""
    released = 0
    for row, assignment in open_assignments(uow.session, application_id=application_id,
                                            call_id=call_id):
        before = assignment.status.value
        assignment.release(reason, uow.now)
        save_assignment(row, assignment, now=uow.now)
        uow.record(AGGREGATE, assignment.id, "release", from_status=before,
                   to_status=assignment.status.value, reason=reason,
                   data={"application_id": assignment.application_id})
        events.publish(uow, assignment.events)
        released += 1
    return released
