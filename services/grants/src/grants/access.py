"""Who may see and act on what. Private resources answer 404 to outsiders.

- researchers: applications and grants whose team they are on (or that they drafted);
- institution officers: their organisation's applications and grants;
- programme managers: their own agency's applications and grants (funding agency = their
  ``org``) in lists; any one grant by its id, as every ministry role (acting on another
  agency's is refused: 403);
- reviewers: submitted applications without a conflict of interest, and grants;
- finance: any one grant by its id (it reconciles the payments it makes on
  ``tranche.released``), nothing else;
- auditors and admins: everything (read).
"""

from __future__ import annotations

from sqlalchemy import Select, false, or_, select

from grants.domain.applications import Application, ApplicationStatus
from grants.domain.grants import Grant
from grants.models import ApplicationRow, GrantRow, TeamMemberRow
from servicekit.auth import Principal

NATIONAL = ("auditor", "admin")
# The contract's "ministry roles", who read every grant (GET /v1/grants/{id}).
MINISTRY_READERS = ("program_manager", "reviewer", "auditor", "admin")


def can_read_application(p: Principal, app: Application) -> bool:
    if p.has(*NATIONAL):
        return True
    if p.has("researcher") and app.is_team_member(p.sub):
        return True
    if p.has("institution") and p.org == app.institution_id:
        return True
    if p.has("program_manager") and p.org == app.agency_id:
        return True
    return (p.has("reviewer") and app.status != ApplicationStatus.DRAFT
            and app.conflict_of(p.sub, p.org) is None)


def owns_application(p: Principal, app: Application) -> bool:
    """The researcher who drafted it: they edit, submit and withdraw it."""
    return p.has("researcher") and p.sub == app.applicant_id


def hosts_application(p: Principal, app: Application) -> bool:
    """An officer of its host institution: they endorse it."""
    return p.has("institution") and bool(p.org) and p.org == app.institution_id


def can_read_grant(p: Principal, grant: Grant, applicant_id: str | None = None) -> bool:
    """``applicant_id``: who drafted the grant's application (they read it, as they read
    the application, whether or not they are on its team)."""
    if p.has(*MINISTRY_READERS):
        return True
    if p.has("researcher") and (p.sub in grant.team_ids() or p.sub == applicant_id):
        return True
    return p.has("institution") and p.org == grant.institution_id


def can_read_grant_record(p: Principal, grant: Grant, applicant_id: str | None = None) -> bool:
    """``GET /v1/grants/{id}``: the grant's readers, and finance."""
    return p.has("finance") or can_read_grant(p, grant, applicant_id)


def _on_team(sub: str, application_id_col) -> object:
    return application_id_col.in_(
        select(TeamMemberRow.application_id).where(TeamMemberRow.researcher_id == sub))


def scope_applications(p: Principal, stmt: Select) -> Select:
    """Restrict an applications query to what ``p`` may see."""
    if p.has(*NATIONAL):
        return stmt
    clauses = []
    if p.has("researcher"):
        clauses.append(ApplicationRow.applicant_id == p.sub)
        clauses.append(_on_team(p.sub, ApplicationRow.id))
    if p.has("institution"):
        clauses.append(ApplicationRow.institution_id == p.org)
    if p.has("program_manager"):
        clauses.append(ApplicationRow.agency_id == p.org)
    if p.has("reviewer"):
        not_conflicted = (ApplicationRow.status != ApplicationStatus.DRAFT.value) & (
            ApplicationRow.institution_id != p.org) & (ApplicationRow.applicant_id != p.sub) & (
            ~_on_team(p.sub, ApplicationRow.id))
        clauses.append(not_conflicted)
    return stmt.where(or_(*clauses) if clauses else false())


def scope_grants(p: Principal, stmt: Select) -> Select:
    """Restrict a grants list to what ``p`` may list. A programme manager lists their own
    agency's only: the other agencies' portfolios are not theirs to rebuild."""
    if p.has(*NATIONAL, "reviewer"):
        return stmt
    clauses = []
    if p.has("researcher"):
        clauses.append(_on_team(p.sub, GrantRow.application_id))
        clauses.append(GrantRow.application_id.in_(
            select(ApplicationRow.id).where(ApplicationRow.applicant_id == p.sub)))
    if p.has("institution"):
        clauses.append(GrantRow.institution_id == p.org)
    if p.has("program_manager"):
        clauses.append(GrantRow.agency_id == p.org)
    return stmt.where(or_(*clauses) if clauses else false())
