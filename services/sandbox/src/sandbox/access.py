"""Who may see what in the sandbox. Private resources answer 404 to outsiders.

- a firm (``sandbox_applicant``): the applications it drafted (owner = its token's
  ``sub``) and the pilots they became;
- reviewers and programme managers: every application once submitted, except those of
  their own organisation (a conflict of interest), and every pilot;
- auditors and admins: everything, drafts included (read only).

The public register (no token) shows every pilot ever approved without its
confidential parts: :mod:`sandbox.api.register`.
"""

from __future__ import annotations

from sqlalchemy import Select, false, or_

from sandbox.domain.applications import Application, ApplicationStatus
from sandbox.models import ApplicationRow, PilotRow
from servicekit.auth import MINISTRY_ROLES, Principal

NATIONAL = ("auditor", "admin")
DESKS = ("program_manager", "reviewer")
MINISTRY = tuple(sorted(MINISTRY_ROLES))


def owns(p: Principal, owner_id: str) -> bool:
    return p.has("sandbox_applicant") and p.sub == owner_id


def can_read_application(p: Principal, app: Application) -> bool:
    if owns(p, app.owner_id) or p.has(*NATIONAL):
        return True
    return (p.has(*DESKS) and app.status != ApplicationStatus.DRAFT
            and app.conflict_of(p.org) is None)


def scope_applications(p: Principal, stmt: Select) -> Select:
    """Restrict an applications query to what ``p`` may list."""
    if p.has(*NATIONAL):
        return stmt
    clauses = []
    if p.has("sandbox_applicant"):
        clauses.append(ApplicationRow.owner_id == p.sub)
    if p.has(*DESKS):
        clauses.append((ApplicationRow.status != ApplicationStatus.DRAFT.value)
                       & (ApplicationRow.organisation_id != p.org))
    return stmt.where(or_(*clauses) if clauses else false())


def can_read_pilot(p: Principal, owner_id: str) -> bool:
    return p.has(*MINISTRY) or owns(p, owner_id)


def scope_pilots(p: Principal, stmt: Select) -> Select:
    """Restrict a pilots query to what ``p`` may list."""
    if p.has(*MINISTRY):
        return stmt
    if p.has("sandbox_applicant"):
        return stmt.where(PilotRow.owner_id == p.sub)
    return stmt.where(false())
