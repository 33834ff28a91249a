"""Applications: draft → submitted → under_review → approved / rejected, or withdrawn
by their owner before the decision (domain.md §1).

Team contribution shares and milestone tranche shares are basis points summing to
exactly 10000. A draft is edited by its owner (the same rules; its call and institution
stay) and endorsed by its host institution: a call that requires endorsement takes no
unendorsed submission, and an edit voids the endorsement. Reviews are one per reviewer,
refused on a conflict of interest. A decision needs the reviews of the call's tier for
the amount requested; approval is bounded by the request, the call's maximum award and
the call's remaining budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from grants.domain.calls import Call, CallStatus
from grants.domain.decisions import DecisionNo, TakeNumber
from grants.domain.errors import ConflictOfInterest, IllegalTransition, InvalidInput
from grants.domain.money import FULL_BP


class ApplicationStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


# Submitted and not yet decided: what is reviewed.
REVIEWABLE = (ApplicationStatus.SUBMITTED, ApplicationStatus.UNDER_REVIEW)
# Not yet decided: what the owner may still withdraw.
UNDECIDED = (ApplicationStatus.DRAFT, ApplicationStatus.SUBMITTED, ApplicationStatus.UNDER_REVIEW)


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Recommendation(StrEnum):
    FUND = "fund"
    REVISE = "revise"
    REJECT = "reject"


@dataclass(frozen=True)
class TeamMember:
    researcher_id: str
    name: str
    role: str
    contribution_bp: int


@dataclass(frozen=True)
class MilestonePlan:
    title: str
    deliverable: str
    verification: str
    due_date: date
    tranche_bp: int


@dataclass(frozen=True)
class Review:
    reviewer_id: str
    reviewer_org: str
    scores: dict[str, int]
    recommendation: Recommendation
    comment: str
    submitted_at: datetime


@dataclass(frozen=True)
class Endorsement:
    """The host institution's endorsement of a draft: who, when."""

    endorsed_by: str
    endorsed_at: datetime


@dataclass(frozen=True)
class ApplicationEndorsed:
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    endorsed_by: str
    endorsed_at: datetime


@dataclass(frozen=True)
class ApplicationWithdrawn:
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    from_status: str
    reason: str
    reviews: int
    withdrawn_at: datetime


@dataclass(frozen=True)
class ApplicationSubmitted:
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    requested_vnd: int
    risk_level: str
    submitted_at: datetime


@dataclass(frozen=True)
class ApplicationDecided:
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    decision: str
    awarded_vnd: int | None
    grant_id: str | None
    reason: str | None
    reviews: int
    decision_no: str
    decision_year: int
    decided_at: datetime


def _check_terms(call: Call, *, institution_id: str, requested_vnd: int,
                 team: list[TeamMember], milestones: list[MilestonePlan], today: date) -> None:
    """The rules a draft's terms keep, when drafted and at every edit."""
    if not call.published:
        raise IllegalTransition(f"call {call.id} is not published")
    if call.status == CallStatus.CANCELLED:
        raise IllegalTransition(f"call {call.id} is cancelled")
    if call.status == CallStatus.CLOSED:  # a closed call never opens again
        raise IllegalTransition(f"call {call.id} is closed: no application can be "
                                "submitted to it any more")
    if requested_vnd <= 0:
        raise InvalidInput("requested_vnd must be positive", field="requested_vnd")
    if requested_vnd > call.max_award_vnd:
        raise InvalidInput(
            f"requested_vnd {requested_vnd} exceeds the call's max_award_vnd "
            f"{call.max_award_vnd}", field="requested_vnd")
    if not institution_id:
        raise InvalidInput("institution_id is required", field="institution_id")
    if not team:
        raise InvalidInput("the team needs at least one researcher", field="team")
    ids = [m.researcher_id for m in team]
    if len(set(ids)) != len(ids):
        raise InvalidInput("a researcher appears twice in the team", field="team")
    check_shares([m.contribution_bp for m in team], "contribution_bp")
    if not milestones:
        raise InvalidInput("at least one milestone is required", field="milestones")
    check_shares([m.tranche_bp for m in milestones], "tranche_bp")
    for m in milestones:
        if m.due_date <= today:
            raise InvalidInput(f"milestone '{m.title}' is due on {m.due_date}, "
                               "which is not in the future", field="due_date")


def check_shares(values: list[int], field_name: str) -> None:
    if any(v <= 0 for v in values):
        raise InvalidInput(f"every {field_name} must be positive", field=field_name)
    total = sum(values)
    if total != FULL_BP:
        raise InvalidInput(f"{field_name} must sum to exactly 10000 (got {total})",
                           field=field_name)


@dataclass
class Application:
    id: str
    call_id: str
    agency_id: str
    applicant_id: str
    institution_id: str
    title: str
    abstract: str
    requested_vnd: int
    risk_level: RiskLevel
    team: list[TeamMember]
    milestones: list[MilestonePlan]
    status: ApplicationStatus = ApplicationStatus.DRAFT
    reviews: list[Review] = field(default_factory=list)
    awarded_vnd: int | None = None
    decision_reason: str | None = None
    grant_id: str | None = None
    decision: DecisionNo | None = None
    endorsement: Endorsement | None = None
    withdrawal_reason: str | None = None
    version: int = 1
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def draft(
        cls, *, id: str, call: Call, applicant_id: str, institution_id: str, title: str,
        abstract: str, requested_vnd: int, risk_level: RiskLevel, team: list[TeamMember],
        milestones: list[MilestonePlan], today: date,
    ) -> Application:
        _check_terms(call, institution_id=institution_id, requested_vnd=requested_vnd,
                     team=team, milestones=milestones, today=today)
        return cls(id=id, call_id=call.id, agency_id=call.agency_id,
                   applicant_id=applicant_id, institution_id=institution_id, title=title,
                   abstract=abstract, requested_vnd=requested_vnd, risk_level=risk_level,
                   team=team, milestones=milestones)

    def revise(
        self, *, call: Call, call_id: str, institution_id: str, title: str, abstract: str,
        requested_vnd: int, risk_level: RiskLevel, team: list[TeamMember],
        milestones: list[MilestonePlan], today: date,
    ) -> dict[str, dict[str, Any]]:
        """Edit the draft with the creation body, checked as :meth:`draft` checks it;
        ``call_id`` and ``institution_id`` cannot change. Returns each changed field as
        ``{from, to}``; a change voids the host institution's endorsement."""
        if self.status != ApplicationStatus.DRAFT:
            raise IllegalTransition(f"application is {self.status}; only a draft is edited")
        if call_id != self.call_id:
            raise InvalidInput("call_id cannot change: draft a new application for "
                               "another call", field="call_id")
        if institution_id != self.institution_id:
            raise InvalidInput("institution_id cannot change", field="institution_id")
        _check_terms(call, institution_id=institution_id, requested_vnd=requested_vnd,
                     team=team, milestones=milestones, today=today)
        changes: dict[str, dict[str, Any]] = {}
        for name, after in (("title", title), ("abstract", abstract),
                            ("requested_vnd", requested_vnd), ("risk_level", risk_level),
                            ("team", team), ("milestones", milestones)):
            before = getattr(self, name)
            if before != after:
                changes[name] = {"from": before, "to": after}
                setattr(self, name, after)
        if changes:
            self.version += 1
            if self.endorsement is not None:
                changes["endorsement"] = {"from": self.endorsement, "to": None}
                self.endorsement = None
        return changes

    # --- who is who -------------------------------------------------------------------
    def team_ids(self) -> set[str]:
        return {m.researcher_id for m in self.team}

    def is_team_member(self, sub: str) -> bool:
        return sub == self.applicant_id or sub in self.team_ids()

    def conflict_of(self, reviewer_id: str, reviewer_org: str) -> str | None:
        """Why this reviewer may not review it, or None."""
        if reviewer_org and reviewer_org == self.institution_id:
            return "the reviewer's organisation is the applicant institution"
        if self.is_team_member(reviewer_id):
            return "the reviewer is on the applicant team"
        return None

    def reviews_needed(self, call: Call) -> int:
        return call.reviews_needed(self.requested_vnd)

    @property
    def decided(self) -> bool:
        return self.status in (ApplicationStatus.APPROVED, ApplicationStatus.REJECTED)

    # --- transitions ------------------------------------------------------------------
    def endorse(self, *, endorsed_by: str, now: datetime) -> None:
        """The host institution endorses the draft (the caller checked the endorser is
        of the application's institution)."""
        if self.status != ApplicationStatus.DRAFT:
            raise IllegalTransition(f"application is {self.status}; only a draft is "
                                    "endorsed")
        if self.endorsement is not None:
            raise IllegalTransition("the draft is already endorsed")
        if self.is_team_member(endorsed_by):
            raise ConflictOfInterest("conflict of interest: the endorser is on the "
                                     "applicant team")
        self.endorsement = Endorsement(endorsed_by, now)
        self.events.append(ApplicationEndorsed(
            application_id=self.id, call_id=self.call_id, agency_id=self.agency_id,
            institution_id=self.institution_id, endorsed_by=endorsed_by, endorsed_at=now))

    def withdraw(self, reason: str, now: datetime) -> None:
        """Withdrawn by its owner any time before the decision; its reviews stay."""
        if self.status not in UNDECIDED:
            raise IllegalTransition(f"application is {self.status}; only an application "
                                    "not yet decided is withdrawn")
        if not reason.strip():
            raise InvalidInput("a withdrawal needs a reason", field="reason")
        before = self.status
        self.status = ApplicationStatus.WITHDRAWN
        self.withdrawal_reason = reason
        self.events.append(ApplicationWithdrawn(
            application_id=self.id, call_id=self.call_id, agency_id=self.agency_id,
            institution_id=self.institution_id, from_status=before.value, reason=reason,
            reviews=len(self.reviews), withdrawn_at=now))

    def submit(self, call: Call, now: datetime) -> None:
        if self.status != ApplicationStatus.DRAFT:
            raise IllegalTransition(f"application is {self.status}; only a draft is submitted")
        if not call.accepting_submissions(now):
            raise IllegalTransition(f"call {call.id} is not open for submissions "
                                    f"(status {call.status}, window {call.opens_at.isoformat()}"
                                    f" – {call.closes_at.isoformat()})")
        if call.requires_endorsement and self.endorsement is None:
            raise IllegalTransition("the call requires the host institution's endorsement: "
                                    f"{self.institution_id} has not endorsed this draft")
        self.status = ApplicationStatus.SUBMITTED
        self.events.append(ApplicationSubmitted(
            application_id=self.id, call_id=self.call_id, agency_id=self.agency_id,
            institution_id=self.institution_id, requested_vnd=self.requested_vnd,
            risk_level=self.risk_level.value, submitted_at=now))

    def add_review(self, review: Review, *, declared_conflict: bool) -> None:
        if self.status not in (ApplicationStatus.SUBMITTED, ApplicationStatus.UNDER_REVIEW):
            raise IllegalTransition(f"application is {self.status}; only submitted "
                                    "applications are reviewed")
        if declared_conflict:
            raise ConflictOfInterest("the reviewer declared a conflict of interest")
        reason = self.conflict_of(review.reviewer_id, review.reviewer_org)
        if reason:
            raise ConflictOfInterest(f"conflict of interest: {reason}")
        if any(r.reviewer_id == review.reviewer_id for r in self.reviews):
            raise IllegalTransition("this reviewer has already reviewed the application")
        if not review.scores:
            raise InvalidInput("at least one criterion must be scored", field="scores")
        for criterion, score in review.scores.items():
            if not 1 <= score <= 5:
                raise InvalidInput(f"score for '{criterion}' must be 1..5", field="scores")
        self.reviews.append(review)
        self.status = ApplicationStatus.UNDER_REVIEW

    def _ready_for_decision(self, call: Call) -> None:
        if self.status not in (ApplicationStatus.SUBMITTED, ApplicationStatus.UNDER_REVIEW):
            raise IllegalTransition(f"application is {self.status}; it cannot be decided")
        call.check_reviewing()
        needed = self.reviews_needed(call)
        if len(self.reviews) < needed:
            raise IllegalTransition(f"a decision needs at least {needed} reviews for "
                                    f"{self.requested_vnd} VND requested "
                                    f"(has {len(self.reviews)})")

    def approve(self, call: Call, awarded_vnd: int, now: datetime, *, grant_id: str,
                take_number: TakeNumber) -> None:
        """Approve, naming the grant it creates; the caller holds the call's row lock so
        the budget check is race-free. The award takes its number once every rule passed."""
        self._ready_for_decision(call)
        if awarded_vnd <= 0:
            raise InvalidInput("awarded_vnd must be positive", field="awarded_vnd")
        if awarded_vnd > self.requested_vnd:
            raise InvalidInput(f"awarded_vnd exceeds requested_vnd ({self.requested_vnd})",
                               field="awarded_vnd")
        if awarded_vnd > call.max_award_vnd:
            raise InvalidInput(f"awarded_vnd exceeds the call's max_award_vnd "
                               f"({call.max_award_vnd})", field="awarded_vnd")
        if awarded_vnd > call.remaining_budget_vnd:
            raise IllegalTransition(f"awarded_vnd exceeds the call's remaining budget "
                                    f"({call.remaining_budget_vnd})", field="awarded_vnd")
        self.decision = DecisionNo.take(take_number)
        call.awarded_vnd += awarded_vnd
        self.status = ApplicationStatus.APPROVED
        self.awarded_vnd = awarded_vnd
        self.grant_id = grant_id
        self._decided("approve", now, awarded_vnd=awarded_vnd)

    def reject(self, call: Call, reason: str, now: datetime, *,
               take_number: TakeNumber) -> None:
        self._ready_for_decision(call)
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason", field="reason")
        self.decision = DecisionNo.take(take_number)
        self.status = ApplicationStatus.REJECTED
        self.decision_reason = reason
        self._decided("reject", now, reason=reason)

    def _decided(self, decision: str, now: datetime, *, awarded_vnd: int | None = None,
                 reason: str | None = None) -> None:
        self.events.append(ApplicationDecided(
            application_id=self.id, call_id=self.call_id, agency_id=self.agency_id,
            institution_id=self.institution_id, decision=decision, awarded_vnd=awarded_vnd,
            grant_id=self.grant_id, reason=reason, reviews=len(self.reviews),
            decision_no=self.decision.decision_no, decision_year=self.decision.year,
            decided_at=now))
