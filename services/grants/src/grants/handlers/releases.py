"""The release of reviewer assignments still open (assigned or accepted) when their
application is withdrawn or decided, or their call cancelled."""

from __future__ import annotations

from grants import events
from grants.handlers import ASSIGNMENT
from grants.repository import Repository
from servicekit.unit_of_work import AbstractUnitOfWork


def release_open(uow: AbstractUnitOfWork, repo: Repository, reason: str, *,
                 application_id: str | None = None, call_id: str | None = None) -> None:
    """Release the open assignments of an application (withdrawn or decided) or of a
    whole call (cancelled), each audited and announced (``assignment.released``)."""
    for assignment in repo.open_assignments(application_id=application_id, call_id=call_id):
        before = assignment.status.value
        assignment.release(reason, uow.now)
        repo.save_assignment(assignment, uow.now)
        uow.record(ASSIGNMENT, assignment.id, "release", from_status=before,
                   to_status=assignment.status.value, reason=reason,
                   data={"application_id": assignment.application_id})
        events.publish(uow, assignment.events)
