"""Grants: a lump sum paid in tranches on accepted deliverables, closed with an outcome
whose consequences follow domain.md §2 (risk tolerance).

| outcome               | unreleased tranches | refund due          | civil liability |
|-----------------------|---------------------|---------------------|-----------------|
| completed             | none left           | 0                   | n/a             |
| partially_completed   | cancelled           | 0                   | n/a             |
| failed_in_good_faith  | cancelled           | 0                   | exempt          |
| terminated_for_breach | cancelled           | decided, ≤ disbursed| not_exempt      |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from grants.domain.applications import Application, TeamMember, check_shares
from grants.domain.decisions import DecisionNo, TakeNumber
from grants.domain.errors import IllegalTransition, InvalidInput
from grants.domain.money import FULL_BP, partial_release, tranche_schedule

# What the programme manager attests for failed_in_good_faith (Law 93/2025/QH15
# Art. 9(3)(a), as reported); stored with the decision.
GOOD_FAITH_CONDITIONS = (
    "full compliance with the task-management rules and procedure",
    "no fraud",
    "no intentional violation",
    "funds used within the agreed objective and scope",
)


class GrantStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    REPORTED = "reported"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PARTIALLY_ACCEPTED = "partially_accepted"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED_IN_GOOD_FAITH = "failed_in_good_faith"
    TERMINATED_FOR_BREACH = "terminated_for_breach"


class Liability(StrEnum):
    EXEMPT = "exempt"
    NOT_EXEMPT = "not_exempt"
    NOT_APPLICABLE = "n/a"


class BreachKind(StrEnum):
    FRAUD = "fraud"
    MISUSE = "misuse"
    ABANDONMENT = "abandonment"
    OTHER = "other"


class ResultKind(StrEnum):
    PATENT = "patent"
    UTILITY_SOLUTION = "utility_solution"
    SOFTWARE = "software"
    DESIGN = "design"
    KNOW_HOW = "know_how"
    DATASET = "dataset"
    PUBLICATION = "publication"


@dataclass
class Milestone:
    id: str
    seq: int
    title: str
    deliverable: str
    verification: str
    due_date: date
    tranche_bp: int
    tranche_vnd: int
    status: MilestoneStatus = MilestoneStatus.PENDING
    released_vnd: int = 0
    cancelled_vnd: int = 0
    completion_bp: int | None = None
    report: dict[str, Any] | None = None
    reject_reason: str | None = None

    def overdue(self, today: date) -> bool:
        """Past due and not yet reported: flagged, never penalised automatically."""
        return self.status in (MilestoneStatus.PENDING, MilestoneStatus.REJECTED) and (
            self.due_date < today)


@dataclass(frozen=True)
class Author:
    researcher_id: str
    name: str
    contribution_bp: int


@dataclass(frozen=True)
class Breach:
    id: str
    kind: BreachKind
    description: str
    recorded_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class Result:
    id: str
    kind: ResultKind
    title: str
    authors: list[Author]
    registered_by: str
    registered_at: datetime


# --- events ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GrantAwarded:
    grant_id: str
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    awarded_vnd: int
    tranches: list[dict[str, Any]]
    team: list[dict[str, Any]]
    decision_no: str
    decision_year: int
    awarded_at: datetime


@dataclass(frozen=True)
class TrancheReleased:
    grant_id: str
    milestone_id: str
    milestone_seq: int
    call_id: str
    agency_id: str
    payee_id: str
    payee_kind: str
    amount_vnd: int
    tranche_vnd: int
    completion_bp: int
    reference: str
    disbursed_vnd: int
    lines: list[dict[str, Any]]
    released_at: datetime


@dataclass(frozen=True)
class ResultRegistered:
    result_id: str
    grant_id: str
    call_id: str
    agency_id: str
    institution_id: str
    kind: str
    title: str
    authors: list[dict[str, Any]]
    registered_at: datetime


@dataclass(frozen=True)
class BreachRecorded:
    grant_id: str
    breach_id: str
    kind: str
    description: str
    recorded_at: datetime


@dataclass(frozen=True)
class GrantClosed:
    grant_id: str
    call_id: str
    agency_id: str
    institution_id: str
    payee_id: str
    payee_kind: str
    outcome: str
    awarded_vnd: int
    disbursed_vnd: int
    cancelled_vnd: int
    refund_due_vnd: int
    liability: str
    reference: str
    justification: str
    breach: str | None
    # A refund due is a receivable from the institution; never a payment to make.
    receivables: list[dict[str, Any]]
    milestones: list[dict[str, Any]]
    decision_no: str
    decision_year: int
    closed_at: datetime


@dataclass(frozen=True)
class PartialCompletion:
    milestone_id: str
    completion_bp: int


@dataclass
class Grant:
    id: str
    application_id: str
    call_id: str
    agency_id: str
    institution_id: str
    awarded_vnd: int
    team: list[TeamMember]
    milestones: list[Milestone]
    status: GrantStatus = GrantStatus.ACTIVE
    breaches: list[Breach] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    outcome: Outcome | None = None
    refund_due_vnd: int = 0
    liability: Liability | None = None
    justification: str | None = None
    breach_stated: str | None = None
    procedures_followed: bool | None = None
    closed_at: datetime | None = None
    award_decision: DecisionNo | None = None
    decision: DecisionNo | None = None  # the closure's
    events: list[Any] = field(default_factory=list, compare=False)

    @classmethod
    def award(cls, application: Application, *, grant_id: str, milestone_ids: list[str],
              now: datetime) -> Grant:
        if application.awarded_vnd is None or application.decision is None:
            raise IllegalTransition("only an approved application becomes a grant")
        plans = application.milestones
        amounts = tranche_schedule(application.awarded_vnd, [m.tranche_bp for m in plans])
        milestones = [
            Milestone(id=mid, seq=i + 1, title=p.title, deliverable=p.deliverable,
                      verification=p.verification, due_date=p.due_date,
                      tranche_bp=p.tranche_bp, tranche_vnd=amount)
            for i, (mid, p, amount) in enumerate(zip(milestone_ids, plans, amounts,
                                                     strict=True))
        ]
        grant = cls(id=grant_id, application_id=application.id, call_id=application.call_id,
                    agency_id=application.agency_id, institution_id=application.institution_id,
                    awarded_vnd=application.awarded_vnd, team=list(application.team),
                    milestones=milestones, award_decision=application.decision)
        grant.events.append(GrantAwarded(
            grant_id=grant.id, application_id=application.id, call_id=grant.call_id,
            agency_id=grant.agency_id, institution_id=grant.institution_id,
            awarded_vnd=grant.awarded_vnd,
            tranches=[{"milestone_id": m.id, "seq": m.seq, "title": m.title,
                       "tranche_bp": m.tranche_bp, "tranche_vnd": m.tranche_vnd,
                       "due_date": m.due_date.isoformat()} for m in milestones],
            team=[{"researcher_id": t.researcher_id, "name": t.name, "role": t.role,
                   "contribution_bp": t.contribution_bp} for t in grant.team],
            decision_no=application.decision.decision_no,
            decision_year=application.decision.year, awarded_at=now))
        return grant

    # --- derived ------------------------------------------------------------------------
    @property
    def disbursed_vnd(self) -> int:
        return sum(m.released_vnd for m in self.milestones)

    @property
    def cancelled_vnd(self) -> int:
        return sum(m.cancelled_vnd for m in self.milestones)

    def team_ids(self) -> set[str]:
        return {t.researcher_id for t in self.team}

    def milestone(self, milestone_id: str) -> Milestone:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(milestone_id)

    def reference(self, milestone: Milestone | None = None) -> str:
        """The business reference finance books against."""
        return f"GRANT-{self.id}" + (f"-M{milestone.seq}" if milestone else "")

    def _require_active(self) -> None:
        if self.status != GrantStatus.ACTIVE:
            raise IllegalTransition(f"grant is {self.status}")

    # --- milestones ---------------------------------------------------------------------
    def report_milestone(self, milestone_id: str, report: dict[str, Any]) -> Milestone:
        self._require_active()
        m = self.milestone(milestone_id)
        if m.status not in (MilestoneStatus.PENDING, MilestoneStatus.REJECTED):
            raise IllegalTransition(f"milestone is {m.status}; only a pending or rejected "
                                    "milestone can be reported")
        m.status = MilestoneStatus.REPORTED
        m.report = report
        m.reject_reason = None
        return m

    def accept_milestone(self, milestone_id: str, now: datetime) -> Milestone:
        self._require_active()
        m = self.milestone(milestone_id)
        if m.status != MilestoneStatus.REPORTED:
            raise IllegalTransition(f"milestone is {m.status}; only a reported milestone "
                                    "can be accepted")
        m.status = MilestoneStatus.ACCEPTED
        self._release(m, m.tranche_vnd, FULL_BP, now)
        return m

    def reject_milestone(self, milestone_id: str, reason: str) -> Milestone:
        self._require_active()
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason", field="reason")
        m = self.milestone(milestone_id)
        if m.status != MilestoneStatus.REPORTED:
            raise IllegalTransition(f"milestone is {m.status}; only a reported milestone "
                                    "can be rejected")
        m.status = MilestoneStatus.REJECTED
        m.reject_reason = reason
        return m

    def reschedule_milestone(self, milestone_id: str, due_date: date, reason: str,
                             today: date) -> tuple[Milestone, date]:
        self._require_active()
        if not reason.strip():
            raise InvalidInput("rescheduling needs a reason", field="reason")
        m = self.milestone(milestone_id)
        if m.status in (MilestoneStatus.ACCEPTED, MilestoneStatus.CANCELLED,
                        MilestoneStatus.PARTIALLY_ACCEPTED):
            raise IllegalTransition(f"milestone is {m.status}; it cannot be rescheduled")
        if due_date <= today:
            raise InvalidInput("the new due_date must be in the future", field="due_date")
        previous = m.due_date
        m.due_date = due_date
        return m, previous

    def _release(self, m: Milestone, amount: int, completion_bp: int, now: datetime) -> None:
        m.released_vnd = amount
        self.events.append(TrancheReleased(
            grant_id=self.id, milestone_id=m.id, milestone_seq=m.seq, call_id=self.call_id,
            agency_id=self.agency_id, payee_id=self.institution_id, payee_kind="institution",
            amount_vnd=amount, tranche_vnd=m.tranche_vnd, completion_bp=completion_bp,
            reference=self.reference(m), disbursed_vnd=self.disbursed_vnd,
            lines=[{"payee_id": self.institution_id, "payee_kind": "institution",
                    "amount_vnd": amount}],
            released_at=now))

    # --- results and breaches -----------------------------------------------------------
    def register_result(self, *, result_id: str, kind: ResultKind, title: str,
                        authors: list[Author], registered_by: str, now: datetime) -> Result:
        if not authors:
            raise InvalidInput("a result needs at least one author", field="authors")
        ids = [a.researcher_id for a in authors]
        if len(set(ids)) != len(ids):
            raise InvalidInput("an author appears twice", field="authors")
        check_shares([a.contribution_bp for a in authors], "contribution_bp")
        result = Result(id=result_id, kind=kind, title=title, authors=authors,
                        registered_by=registered_by, registered_at=now)
        self.results.append(result)
        self.events.append(ResultRegistered(
            result_id=result.id, grant_id=self.id, call_id=self.call_id,
            agency_id=self.agency_id, institution_id=self.institution_id, kind=kind.value,
            title=title,
            authors=[{"researcher_id": a.researcher_id, "name": a.name,
                      "contribution_bp": a.contribution_bp} for a in authors],
            registered_at=now))
        return result

    def record_breach(self, *, breach_id: str, kind: BreachKind, description: str,
                      recorded_by: str, now: datetime) -> Breach:
        self._require_active()
        if not description.strip():
            raise InvalidInput("describe the breach", field="description")
        breach = Breach(id=breach_id, kind=kind, description=description,
                        recorded_by=recorded_by, recorded_at=now)
        self.breaches.append(breach)
        self.events.append(BreachRecorded(grant_id=self.id, breach_id=breach_id,
                                          kind=kind.value, description=description,
                                          recorded_at=now))
        return breach

    # --- closure ------------------------------------------------------------------------
    def close(
        self, *, outcome: Outcome, justification: str, now: datetime,
        procedures_followed: bool | None = None, breach: str | None = None,
        refund_vnd: int | None = None, partial: list[PartialCompletion] | None = None,
        take_number: TakeNumber,
    ) -> None:
        """Close with ``outcome``; the closure takes its number once every rule passed."""
        self._require_active()
        if partial and outcome != Outcome.PARTIALLY_COMPLETED:
            raise InvalidInput("partial applies only to partially_completed", field="partial")
        if refund_vnd is not None and outcome != Outcome.TERMINATED_FOR_BREACH:
            raise InvalidInput("only terminated_for_breach creates a refund",
                               field="refund_vnd")
        handler = {
            Outcome.COMPLETED: self._close_completed,
            Outcome.PARTIALLY_COMPLETED: self._close_partially,
            Outcome.FAILED_IN_GOOD_FAITH: self._close_failed_in_good_faith,
            Outcome.TERMINATED_FOR_BREACH: self._close_for_breach,
        }[outcome]
        handler(justification=justification, procedures_followed=procedures_followed,
                breach=breach, refund_vnd=refund_vnd, partial=partial or [], now=now)
        self.decision = DecisionNo.take(take_number)
        self.status = GrantStatus.CLOSED
        self.outcome = outcome
        self.justification = justification
        self.closed_at = now
        self.events.append(GrantClosed(
            grant_id=self.id, call_id=self.call_id, agency_id=self.agency_id,
            institution_id=self.institution_id, payee_id=self.institution_id,
            payee_kind="institution", outcome=outcome.value, awarded_vnd=self.awarded_vnd,
            disbursed_vnd=self.disbursed_vnd, cancelled_vnd=self.cancelled_vnd,
            refund_due_vnd=self.refund_due_vnd,
            liability=(self.liability or Liability.NOT_APPLICABLE).value,
            reference=self.reference(), justification=justification,
            breach=self.breach_stated,
            receivables=[{"payer_id": self.institution_id, "payer_kind": "institution",
                          "amount_vnd": self.refund_due_vnd}] if self.refund_due_vnd else [],
            milestones=[{"milestone_id": m.id, "seq": m.seq, "status": m.status.value,
                         "tranche_vnd": m.tranche_vnd, "released_vnd": m.released_vnd,
                         "cancelled_vnd": m.cancelled_vnd} for m in self.milestones],
            decision_no=self.decision.decision_no, decision_year=self.decision.year,
            closed_at=now))

    def _cancel_unreleased(self) -> None:
        for m in self.milestones:
            if m.status in (MilestoneStatus.PENDING, MilestoneStatus.REPORTED,
                            MilestoneStatus.REJECTED):
                m.status = MilestoneStatus.CANCELLED
                m.cancelled_vnd = m.tranche_vnd

    def _close_completed(self, **_: Any) -> None:
        open_ = [m.seq for m in self.milestones if m.status != MilestoneStatus.ACCEPTED]
        if open_:
            raise IllegalTransition(f"completed needs every milestone accepted; milestones "
                                    f"{open_} are not")
        self.liability = Liability.NOT_APPLICABLE

    def _close_partially(self, *, partial: list[PartialCompletion], now: datetime,
                         **_: Any) -> None:
        seen: set[str] = set()
        for p in partial:
            if p.milestone_id in seen:
                raise InvalidInput(f"milestone {p.milestone_id} appears twice in partial",
                                   field="partial")
            seen.add(p.milestone_id)
            try:
                m = self.milestone(p.milestone_id)
            except KeyError:
                raise InvalidInput(f"milestone {p.milestone_id} is not on this grant",
                                   field="partial") from None
            if m.status != MilestoneStatus.REPORTED:
                raise InvalidInput(f"milestone {m.seq} is {m.status}; only reported "
                                   "milestones may be accepted in part", field="partial")
            if not 0 < p.completion_bp < FULL_BP:
                raise InvalidInput("completion_bp must be between 1 and 9999",
                                   field="completion_bp")
        for p in partial:
            m = self.milestone(p.milestone_id)
            amount = partial_release(m.tranche_vnd, p.completion_bp)
            m.status = MilestoneStatus.PARTIALLY_ACCEPTED
            m.completion_bp = p.completion_bp
            m.cancelled_vnd = m.tranche_vnd - amount
            self._release(m, amount, p.completion_bp, now)
        self._cancel_unreleased()
        self.liability = Liability.NOT_APPLICABLE

    def _close_failed_in_good_faith(self, *, justification: str,
                                    procedures_followed: bool | None, **_: Any) -> None:
        if self.breaches:
            raise IllegalTransition(
                "failed_in_good_faith is barred: a breach is recorded on this grant "
                f"({self.breaches[0].kind}: {self.breaches[0].description})")
        if procedures_followed is not True:
            raise InvalidInput("failed_in_good_faith needs the attestation "
                               "procedures_followed: true", field="procedures_followed")
        if not justification.strip():
            raise InvalidInput("failed_in_good_faith needs a written justification",
                               field="justification")
        self._cancel_unreleased()
        self.procedures_followed = True
        self.liability = Liability.EXEMPT

    def _close_for_breach(self, *, justification: str, breach: str | None,
                          refund_vnd: int | None, **_: Any) -> None:
        if not (breach or "").strip():
            # A breach recorded earlier (POST .../breaches) states it as well.
            breach = "; ".join(f"{b.kind}: {b.description}" for b in self.breaches)
        if not breach:
            raise InvalidInput("terminated_for_breach needs the breach stated, or one "
                               "recorded on the grant", field="breach")
        refund = refund_vnd or 0
        if refund < 0:
            raise InvalidInput("refund_vnd must not be negative", field="refund_vnd")
        if refund > self.disbursed_vnd:
            raise InvalidInput(f"refund_vnd cannot exceed what was disbursed "
                               f"({self.disbursed_vnd})", field="refund_vnd")
        self._cancel_unreleased()
        self.breach_stated = breach
        self.refund_due_vnd = refund
        self.liability = Liability.NOT_EXEMPT
