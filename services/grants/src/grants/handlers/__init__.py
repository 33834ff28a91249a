"""The grants service's commands: load, call the domain, save, audit and stage the events.

One module per aggregate the commands change: :mod:`.calls`, :mod:`.applications`
(drafts, endorsement, submission, reviews and decisions), :mod:`.assignments` (reviewer
assignments and declarations) and :mod:`.grants`; :mod:`.releases` releases the open
assignments of a withdrawn or decided application or a cancelled call.

The routes call these; each runs inside the request's unit of work
(``servicekit.unit_of_work.AbstractUnitOfWork``) on a
:class:`grants.repository.Repository`, and the route commits with its answer. A handler
never commits, and raises before writing anything when a rule refuses the command. The
unit tests run them on an in-memory unit of work and repository.
"""

from __future__ import annotations

import uuid

# The aggregate types of the audit trail.
CALL = "call"
APPLICATION = "application"
ASSIGNMENT = "assignment"
GRANT = "grant"


def new_id() -> str:
    return str(uuid.uuid4())
