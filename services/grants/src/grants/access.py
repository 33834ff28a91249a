"""Who may see and act on what. Private resources answer 404 to outsiders.

- researchers: applications and grants whose team they are on (or that they drafted);
- institution officers: their organisation's applications and grants;
- programme managers: their own agency's applications and grants (funding agency = their
  ``org``) in lists; any one grant by its id, as every ministry role (acting on another
  agency's is refused: 403);
- reviewers: submitted applications without a conflict of interest (in a call reviewed
  by assignment: those assigned to them, the summary until they declare no conflict),
  and grants;
- finance: grants, read-only (it reconciles the payments it makes on
  ``tranche.released``), nothing else;
- auditors and admins: everything (read), but for reviewer assignments: their assignee,
  their agency's programme managers and auditors (the contract's readers of the queue).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Select, and_, false, or_, select

from grants.domain.applications import Application, ApplicationStatus
from grants.domain.assignments import CLEARED, Assignment
from grants.domain.calls import CallStatus, ReviewMode
from grants.domain.grants import Grant
from grants.models import ApplicationRow, AssignmentRow, CallRow, GrantRow, TeamMemberRow
from servicekit.auth import Principal

NATIONAL = ("auditor", "admin")
# The contract's "ministry roles", who read every grant (GET /v1/grants/{id}).
MINISTRY_READERS = ("program_manager", "reviewer", "auditor", "admin")


class View(StrEnum):
    """How much of an application a reader sees."""

    FULL = "full"
    SUMMARY = "summary"  # what a conflict is judged on: title, call, institution, team


def application_view(p: Principal, app: Application, *, assigned_review: bool = False,
                     assignment: Assignment | None = None) -> View | None:
    """What ``p`` reads of ``app`` (None: nothing, answered 404). ``assigned_review``:
    its call is reviewed by assignment; ``assignment``: ``p``'s active assignment to it.

    In an ``open`` call a reviewer reads a submitted application they have no conflict
    with. In an ``assigned`` call only the assignee does (token ``sub`` and ``org`` as
    assigned): the summary until they declare no conflict, then the whole application.
    """
    if p.has(*NATIONAL):
        return View.FULL
    if p.has("researcher") and app.is_team_member(p.sub):
        return View.FULL
    if p.has("institution") and p.org == app.institution_id:
        return View.FULL
    if p.has("program_manager") and p.org == app.agency_id:
        return View.FULL
    if not p.has("reviewer") or app.status == ApplicationStatus.DRAFT:
        return None
    if app.conflict_of(p.sub, p.org) is not None:
        return None
    if not assigned_review:
        return View.FULL
    if assignment is None or not assignment.is_assignee(p.sub, p.org):
        return None
    return View.FULL if assignment.cleared else View.SUMMARY


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


def acts_for_agency(p: Principal, agency_id: str) -> bool:
    """A programme manager of ``agency_id``: they act on its calls, applications and
    grants (another agency's are refused: 403)."""
    return p.has("program_manager") and p.org == agency_id


def funds(p: Principal, grant: Grant) -> bool:
    """A programme manager of the agency that funds the grant: they act on it."""
    return acts_for_agency(p, grant.agency_id)


def sees_call_drafts(p: Principal | None, agency_id: str) -> bool:
    """A call's draft is private to its agency's programme managers, auditors and admins."""
    return p is not None and (p.has(*NATIONAL) or acts_for_agency(p, agency_id))


# Opened at some time (SQL of Call.published): not a draft, nor cancelled as a draft.
PUBLISHED = and_(CallRow.status != CallStatus.DRAFT.value,
                 or_(CallRow.cancelled_from.is_(None),
                     CallRow.cancelled_from != CallStatus.DRAFT.value))


def scope_calls(p: Principal | None, stmt: Select) -> Select:
    """Restrict a calls list to what ``p`` may list: the published calls, and the drafts
    of their own agency (a programme manager) or of every agency (national roles)."""
    if p is not None and p.has(*NATIONAL):
        return stmt
    if p is not None and p.has("program_manager"):
        return stmt.where(or_(PUBLISHED, CallRow.agency_id == p.org))
    return stmt.where(PUBLISHED)


def reviews_seen_by(p: Principal, app: Application) -> str:
    """Which of an application's reviews ``p`` may see: ``all`` (the national roles, the
    agency's programme managers; any reviewer once the application is decided), ``own``
    (a reviewer before the decision) or ``none`` (the applicants and their institution)."""
    if p.has(*NATIONAL) or acts_for_agency(p, app.agency_id):
        return "all"
    if not p.has("reviewer"):
        return "none"
    decided = app.status in (ApplicationStatus.APPROVED, ApplicationStatus.REJECTED)
    return "all" if decided else "own"


def has_conflict_of_interest(p: Principal, grant: Grant, applicant_id: str | None) -> bool:
    """On the grant's team, or the one who drafted its application: no one accepts their
    own deliverables or closes their own grant."""
    return p.sub in grant.team_ids() or p.sub == applicant_id


def on_team(p: Principal, grant: Grant) -> bool:
    """On the grant's team: they report its milestones and register its results."""
    return p.sub in grant.team_ids()


def may_list_institution_grants(p: Principal, institution_id: str) -> bool:
    """An institution's grants: its own officers, and the ministry roles (each sees the
    grants it may list: ``scope_grants``); another institution's officer gets 404."""
    return p.roles != {"institution"} or p.org == institution_id


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
        openly_reviewed = ApplicationRow.call_id.in_(
            select(CallRow.id).where(CallRow.review_mode == ReviewMode.OPEN.value))
        # In assigned calls: what the reviewer was assigned and declared no conflict with
        # (the summaries before the declaration are reached through their queue).
        cleared = ApplicationRow.id.in_(select(AssignmentRow.application_id).where(
            AssignmentRow.reviewer_id == p.sub, AssignmentRow.reviewer_org == p.org,
            AssignmentRow.status.in_([s.value for s in CLEARED])))
        clauses.append(not_conflicted & or_(openly_reviewed, cleared))
    return stmt.where(or_(*clauses) if clauses else false())


def assignment_reader(p: Principal, a: Assignment) -> bool:
    """The assignee (token ``sub`` and ``org`` as assigned), their agency's programme
    managers and auditors read an assignment and its history."""
    if p.has("auditor"):
        return True
    if p.has("program_manager") and p.org == a.agency_id:
        return True
    return p.has("reviewer") and a.is_assignee(p.sub, p.org)


def scope_assignments(p: Principal, stmt: Select) -> Select:
    """Restrict an assignments query to what ``p`` may list: a reviewer their own, a
    programme manager their agency's, an auditor every one."""
    if p.has("auditor"):
        return stmt
    clauses = []
    if p.has("reviewer"):
        clauses.append((AssignmentRow.reviewer_id == p.sub)
                       & (AssignmentRow.reviewer_org == p.org))
    if p.has("program_manager"):
        clauses.append(AssignmentRow.agency_id == p.org)
    return stmt.where(or_(*clauses) if clauses else false())


def scope_grants(p: Principal, stmt: Select) -> Select:
    """Restrict a grants list to what ``p`` may list. A programme manager lists their own
    agency's only: the other agencies' portfolios are not theirs to rebuild."""
    if p.has(*NATIONAL, "reviewer", "finance"):
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
