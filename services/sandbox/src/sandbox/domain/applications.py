"""Sandbox applications (domain.md §4; contract: the sandbox section).

draft → submitted → under_assessment ⇄ changes_requested → approved / rejected, and
withdrawn by the owner at any time before the decision. The owner edits a draft or an
application with changes requested, and (re)submits it.

Submission starts the sector's **decision clock**, which stops while changes are
requested and runs on from where it stopped at resubmission: the application is due for
a decision on ``decision_due_on`` and ``overdue`` after it.

Each submission is assessed afresh: six criteria pass or fail with a note, one
assessment per reviewer and submission, never by a reviewer of the applicant's own
organisation. **Four eyes**: approval needs two assessments of the current submission by
two different reviewers, neither of them the decider, and no failed criterion in any of
that submission's assessments; a rejection may cite any. Approval states conditions,
limits no wider than the requested scope, and dates within the sector's profile; it
creates a pilot (:mod:`sandbox.domain.pilots`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sandbox.domain.dates import last_day_after
from sandbox.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput
from sandbox.domain.sectors import SectorProfile


class ApplicationStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_ASSESSMENT = "under_assessment"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


EDITABLE = (ApplicationStatus.DRAFT, ApplicationStatus.CHANGES_REQUESTED)
AWAITING_DECISION = (ApplicationStatus.SUBMITTED, ApplicationStatus.UNDER_ASSESSMENT)
UNDECIDED = (*EDITABLE, *AWAITING_DECISION)

# The six eligibility criteria (domain.md §4), in the contract's order.
CRITERIA = ("in_scope", "genuine_innovation", "consumer_benefit", "need_for_sandbox",
            "readiness", "risk_controls")

ENTERPRISE_CODE = re.compile(r"[0-9]{10}")


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Exemption:
    provision: str
    justification: str


@dataclass(frozen=True)
class Scope:
    """A pilot's reach: where, for how many participants, up to what one transaction
    (``None``: the firm asks for no cap on a transaction, or none applies)."""

    regions: tuple[str, ...]
    max_participants: int
    max_transaction_vnd: int | None = None

    def wider_than(self, requested: Scope) -> list[str]:
        """Why this scope (as limits) is wider than ``requested``: one line per limit."""
        wider = []
        extra = [r for r in self.regions if r not in requested.regions]
        if extra:
            wider.append(f"regions {', '.join(extra)} were not requested")
        if self.max_participants > requested.max_participants:
            wider.append(f"max_participants {self.max_participants} exceeds the requested "
                         f"{requested.max_participants}")
        if requested.max_transaction_vnd is not None and (
                self.max_transaction_vnd is None
                or self.max_transaction_vnd > requested.max_transaction_vnd):
            wider.append(f"max_transaction_vnd {self.max_transaction_vnd} exceeds the "
                         f"requested {requested.max_transaction_vnd}")
        return wider

    def as_dict(self) -> dict[str, Any]:
        return {"regions": list(self.regions), "max_participants": self.max_participants,
                "max_transaction_vnd": self.max_transaction_vnd}


@dataclass(frozen=True)
class Proposal:
    """What the firm asks for: the body of a draft or an edit."""

    firm_name: str
    enterprise_code: str
    sector: str
    technology: str
    description: str
    exemptions: tuple[Exemption, ...]
    scope: Scope
    requested_months: int
    safeguards: str
    risk_assessment: str
    exit_plan: str

    def check(self, profile: SectorProfile) -> None:
        """The rules a proposal meets in its sector (the profile of ``self.sector``)."""
        if not ENTERPRISE_CODE.fullmatch(self.enterprise_code):
            raise InvalidInput("enterprise_code is the firm's 10-digit enterprise code",
                               field="enterprise_code")
        if not 1 <= self.requested_months <= profile.max_initial_months:
            raise InvalidInput(
                f"requested_months must be 1 to {profile.max_initial_months}, the initial "
                f"maximum of sector '{profile.sector}'", field="requested_months")
        if not self.exemptions:
            raise InvalidInput("a sandbox application names at least one provision to be "
                               "exempted from, with its justification", field="exemptions")
        provisions = [e.provision for e in self.exemptions]
        if len(set(provisions)) != len(provisions):
            raise InvalidInput("a provision appears twice in exemptions", field="exemptions")
        for provision in provisions:
            profile.check_provision(provision)
        if not self.scope.regions:
            raise InvalidInput("scope.regions names at least one region", field="scope")
        if len(set(self.scope.regions)) != len(self.scope.regions):
            raise InvalidInput("a region appears twice in scope.regions", field="scope")


@dataclass(frozen=True)
class Criterion:
    passed: bool
    note: str


@dataclass(frozen=True)
class Assessment:
    id: str
    reviewer_id: str
    reviewer_org: str
    submission: int
    criteria: dict[str, Criterion]
    summary: str
    assessed_at: datetime

    @property
    def failed(self) -> list[str]:
        return [name for name in CRITERIA if not self.criteria[name].passed]


@dataclass(frozen=True)
class ApprovalTerms:
    conditions: tuple[str, ...]
    limits: Scope
    starts_on: date
    ends_on: date


@dataclass
class DecisionClock:
    """The sector's decision deadline, counted in days from submission; stopped while
    changes are requested (``running_since`` None) and resumed where it stopped."""

    deadline_days: int
    days_used: int = 0
    running_since: date | None = None

    def start(self, today: date) -> None:
        self.running_since = today

    def stop(self, today: date) -> None:
        if self.running_since is not None:
            self.days_used += max((today - self.running_since).days, 0)
            self.running_since = None

    @property
    def due_on(self) -> date | None:
        if self.running_since is None:
            return None
        return self.running_since + timedelta(days=self.deadline_days - self.days_used)


# --- events --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApplicationSubmitted:
    application_id: str
    applicant_id: str
    organisation_id: str
    firm_name: str
    enterprise_code: str
    sector: str
    supervising_agency: str
    technology: str
    exemptions: list[dict[str, str]]
    scope: dict[str, Any]
    requested_months: int
    submission: int
    submitted_at: datetime
    decision_due_on: date


@dataclass(frozen=True)
class ApplicationWithdrawn:
    application_id: str
    organisation_id: str
    sector: str
    reason: str
    withdrawn_at: datetime


@dataclass(frozen=True)
class ChangesRequested:
    application_id: str
    organisation_id: str
    sector: str
    reasons: list[str]
    decision_days_left: int
    requested_at: datetime


@dataclass(frozen=True)
class ApplicationDecided:
    application_id: str
    organisation_id: str
    firm_name: str
    sector: str
    supervising_agency: str
    decision: str
    decision_no: str
    decision_year: int
    pilot_id: str | None
    conditions: list[str]
    limits: dict[str, Any] | None
    starts_on: date | None
    ends_on: date | None
    reasons: list[str]
    assessments: int
    decided_at: datetime


@dataclass(frozen=True)
class ApplicationDecisionOverdue:
    application_id: str
    organisation_id: str
    sector: str
    supervising_agency: str
    decision_due_on: date
    flagged_on: date


# --- the aggregate -------------------------------------------------------------------------

# The next number of the decision's register: (decision_no, decision_year), taken only
# once every rule of the decision holds.
DecisionNumberSource = Callable[[], tuple[str, int]]


@dataclass
class Application:
    id: str
    owner_id: str
    organisation_id: str
    proposal: Proposal
    supervising_agency: str
    status: ApplicationStatus = ApplicationStatus.DRAFT
    submission: int = 0
    clock: DecisionClock | None = None
    assessments: list[Assessment] = field(default_factory=list)
    changes_requested: tuple[str, ...] = ()
    decision: Decision | None = None
    decision_no: str | None = None
    decision_year: int | None = None
    decided_by: str | None = None
    decided_on: date | None = None
    terms: ApprovalTerms | None = None
    reasons: tuple[str, ...] = ()
    pilot_id: str | None = None
    withdraw_reason: str | None = None
    overdue_flagged_on: date | None = None  # the scheduler flagged it overdue, once
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def draft(cls, *, id: str, owner_id: str, organisation_id: str, proposal: Proposal,
              profile: SectorProfile) -> Application:
        if not organisation_id:
            raise InvalidInput("the applicant's token carries no organisation (org): the "
                               "firm applies as an organisation", field="org")
        proposal.check(profile)
        return cls(id=id, owner_id=owner_id, organisation_id=organisation_id,
                   proposal=proposal, supervising_agency=profile.supervising_agency)

    # --- read-outs ------------------------------------------------------------------
    @property
    def decision_due_on(self) -> date | None:
        if self.status not in AWAITING_DECISION or self.clock is None:
            return None
        return self.clock.due_on

    def overdue(self, today: date) -> bool:
        due = self.decision_due_on
        return due is not None and today > due

    def flag_overdue(self, today: date) -> bool:
        """Flag, once, an application whose decision is overdue; False when there is
        nothing to flag."""
        due = self.decision_due_on
        if due is None or today <= due or self.overdue_flagged_on is not None:
            return False
        self.overdue_flagged_on = today
        self.events.append(ApplicationDecisionOverdue(
            application_id=self.id, organisation_id=self.organisation_id,
            sector=self.proposal.sector, supervising_agency=self.supervising_agency,
            decision_due_on=due, flagged_on=today))
        return True

    def current_assessments(self) -> list[Assessment]:
        return [a for a in self.assessments if a.submission == self.submission]

    def conflict_of(self, reviewer_org: str) -> str | None:
        """Why a reviewer of ``reviewer_org`` may not act on this application, or None."""
        if reviewer_org and reviewer_org == self.organisation_id:
            return "the reviewer's organisation is the applicant's"
        return None

    # --- the owner's steps ------------------------------------------------------------
    def edit(self, proposal: Proposal, profile: SectorProfile) -> None:
        if self.status not in EDITABLE:
            raise IllegalTransition(f"application is {self.status}; it is edited only as a "
                                    "draft or with changes requested")
        proposal.check(profile)
        self.proposal = proposal
        self.supervising_agency = profile.supervising_agency

    def submit(self, profile: SectorProfile, today: date, now: datetime) -> None:
        """Start the decision clock (a resubmission runs it on from where it stopped)."""
        if self.status not in EDITABLE:
            raise IllegalTransition(f"application is {self.status}; only a draft or an "
                                    "application with changes requested is submitted")
        self.proposal.check(profile)  # the profile in force may have changed since
        if self.clock is None:
            self.clock = DecisionClock(profile.decision_deadline_days)
        self.clock.start(today)
        self.submission += 1
        self.status = ApplicationStatus.SUBMITTED
        self.changes_requested = ()
        p = self.proposal
        self.events.append(ApplicationSubmitted(
            application_id=self.id, applicant_id=self.owner_id,
            organisation_id=self.organisation_id, firm_name=p.firm_name,
            enterprise_code=p.enterprise_code, sector=p.sector,
            supervising_agency=self.supervising_agency, technology=p.technology,
            exemptions=[{"provision": e.provision, "justification": e.justification}
                        for e in p.exemptions],
            scope=p.scope.as_dict(), requested_months=p.requested_months,
            submission=self.submission, submitted_at=now,
            decision_due_on=self.clock.due_on))

    def withdraw(self, reason: str, today: date, now: datetime) -> None:
        if self.status not in UNDECIDED:
            raise IllegalTransition(f"application is {self.status}; it can be withdrawn "
                                    "only before the decision")
        if not reason.strip():
            raise InvalidInput("a withdrawal states its reason", field="reason")
        if self.clock is not None:
            self.clock.stop(today)
        self.status = ApplicationStatus.WITHDRAWN
        self.withdraw_reason = reason
        self.events.append(ApplicationWithdrawn(
            application_id=self.id, organisation_id=self.organisation_id,
            sector=self.proposal.sector, reason=reason, withdrawn_at=now))

    # --- the reviewers' steps ---------------------------------------------------------
    def assess(self, assessment: Assessment) -> None:
        if self.status not in AWAITING_DECISION:
            raise IllegalTransition(f"application is {self.status}; only a submitted "
                                    "application is assessed")
        self._refuse_conflict(assessment.reviewer_org)
        if set(assessment.criteria) != set(CRITERIA):
            missing = [c for c in CRITERIA if c not in assessment.criteria]
            raise InvalidInput(f"an assessment judges exactly the six criteria "
                               f"{', '.join(CRITERIA)}" + (
                                   f"; missing {', '.join(missing)}" if missing else ""),
                               field="criteria")
        if any(a.reviewer_id == assessment.reviewer_id for a in self.current_assessments()):
            raise IllegalTransition("this reviewer has already assessed this submission of "
                                    "the application (one assessment per reviewer)")
        self.assessments.append(replace(assessment, submission=self.submission))
        self.status = ApplicationStatus.UNDER_ASSESSMENT

    def request_changes(self, reviewer_org: str, reasons: list[str], today: date,
                        now: datetime) -> None:
        """Back to the owner with reasons; the decision clock stops."""
        if self.status not in AWAITING_DECISION:
            raise IllegalTransition(f"application is {self.status}; changes are requested "
                                    "only of a submitted application")
        self._refuse_conflict(reviewer_org)
        if not reasons or not all(r.strip() for r in reasons):
            raise InvalidInput("a request for changes states its reasons", field="reasons")
        assert self.clock is not None  # submitted: the clock was started
        self.clock.stop(today)
        self.status = ApplicationStatus.CHANGES_REQUESTED
        self.changes_requested = tuple(reasons)
        self.events.append(ChangesRequested(
            application_id=self.id, organisation_id=self.organisation_id,
            sector=self.proposal.sector, reasons=list(reasons),
            decision_days_left=self.clock.deadline_days - self.clock.days_used,
            requested_at=now))

    def _refuse_conflict(self, org: str) -> None:
        """Refuse (409) a reviewer or decider of the applicant's own organisation."""
        reason = self.conflict_of(org)
        if reason:
            raise ConflictOfInterest(f"conflict of interest: {reason}")

    def check_approval(self, decider_id: str, decider_org: str, terms: ApprovalTerms,
                       profile: SectorProfile, today: date) -> None:
        """Every rule an approval meets; raises the first one broken."""
        if self.status not in AWAITING_DECISION:
            raise IllegalTransition(f"application is {self.status}; only a submitted "
                                    "application is decided")
        self._refuse_conflict(decider_org)
        current = self.current_assessments()
        if any(a.reviewer_id == decider_id for a in current):
            raise ConflictOfInterest("four eyes: the decider assessed this application; "
                                     "another reviewer decides")
        if len({a.reviewer_id for a in current}) < 2:
            raise IllegalTransition(
                f"four eyes: approval needs assessments by two different reviewers, "
                f"neither of them the decider (this submission has {len(current)})")
        failed = sorted({c for a in current for c in a.failed})
        if failed:
            raise IllegalTransition(f"approval needs every criterion passed; failed: "
                                    f"{', '.join(failed)}")
        if not terms.conditions or not all(c.strip() for c in terms.conditions):
            raise InvalidInput("an approval states its conditions", field="conditions")
        wider = terms.limits.wider_than(self.proposal.scope)
        if wider:
            raise InvalidInput("limits are no wider than the requested scope: "
                               + "; ".join(wider), field="limits")
        if not terms.limits.regions:
            raise InvalidInput("limits.regions names at least one region", field="limits")
        check_term(terms.starts_on, terms.ends_on, today=today, profile=profile,
                   requested_months=self.proposal.requested_months)

    def approve(self, decider_id: str, decider_org: str, terms: ApprovalTerms,
                profile: SectorProfile, today: date, now: datetime, *, pilot_id: str,
                number: DecisionNumberSource) -> None:
        """Approve on ``terms``, naming the pilot it creates. ``number`` gives the decision
        its number once every rule holds (so a refused approval takes none)."""
        self.check_approval(decider_id, decider_org, terms, profile, today)
        self._decide(Decision.APPROVE, decider_id, today, now, number, terms=terms,
                     pilot_id=pilot_id)

    def reject(self, decider_id: str, decider_org: str, reasons: list[str], today: date,
               now: datetime, *, number: DecisionNumberSource) -> None:
        if self.status not in (*AWAITING_DECISION, ApplicationStatus.CHANGES_REQUESTED):
            raise IllegalTransition(f"application is {self.status}; only a submitted "
                                    "application is decided")
        self._refuse_conflict(decider_org)
        if not reasons or not all(r.strip() for r in reasons):
            raise InvalidInput("a rejection states its reasons", field="reasons")
        self._decide(Decision.REJECT, decider_id, today, now, number, reasons=tuple(reasons))

    def _decide(self, decision: Decision, decider_id: str, today: date, now: datetime,
                number: DecisionNumberSource, *, terms: ApprovalTerms | None = None,
                pilot_id: str | None = None, reasons: tuple[str, ...] = ()) -> None:
        decision_no, decision_year = number()
        if self.clock is not None:
            self.clock.stop(today)
        self.status = (ApplicationStatus.APPROVED if decision == Decision.APPROVE
                       else ApplicationStatus.REJECTED)
        self.decision, self.decided_by, self.decided_on = decision, decider_id, today
        self.decision_no, self.decision_year = decision_no, decision_year
        self.terms, self.pilot_id, self.reasons = terms, pilot_id, reasons
        self.events.append(ApplicationDecided(
            application_id=self.id, organisation_id=self.organisation_id,
            firm_name=self.proposal.firm_name, sector=self.proposal.sector,
            supervising_agency=self.supervising_agency, decision=decision.value,
            decision_no=decision_no, decision_year=decision_year, pilot_id=pilot_id,
            conditions=list(terms.conditions) if terms else [],
            limits=terms.limits.as_dict() if terms else None,
            starts_on=terms.starts_on if terms else None,
            ends_on=terms.ends_on if terms else None, reasons=list(reasons),
            assessments=len(self.current_assessments()), decided_at=now))


def check_term(starts_on: date, ends_on: date, *, today: date, profile: SectorProfile,
               requested_months: int) -> None:
    """An approved term: starting from today to the profile's start deadline, ending
    after it starts and no later than the requested months, the sector's initial
    maximum and its absolute end date allow."""
    latest_start = today + timedelta(days=profile.start_deadline_days)
    if starts_on < today:
        raise InvalidInput(f"starts_on {starts_on} is in the past", field="starts_on")
    if starts_on > latest_start:
        raise InvalidInput(
            f"starts_on must be no later than {latest_start}: sector '{profile.sector}' "
            f"starts a pilot within {profile.start_deadline_days} days of approval",
            field="starts_on")
    if ends_on <= starts_on:
        raise InvalidInput("ends_on must be after starts_on", field="ends_on")
    months = min(requested_months, profile.max_initial_months)
    latest_end = last_day_after(starts_on, months)
    if ends_on > latest_end:
        raise InvalidInput(
            f"ends_on must be no later than {latest_end}: {months} months from starts_on "
            f"(requested {requested_months}, sector maximum {profile.max_initial_months})",
            field="ends_on")
    if profile.ends_before is not None and ends_on >= profile.ends_before:
        raise InvalidInput(f"ends_on must be before {profile.ends_before} in sector "
                           f"'{profile.sector}'", field="ends_on")
