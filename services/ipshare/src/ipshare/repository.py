"""Loading and saving ipshare's aggregates: the only place rows and domain objects meet.

:class:`Repository` is what the command handlers need; :class:`SqlRepository` keeps it
in the service's database through the request's session (the unit of work's
transaction), and the unit tests keep it in memory. The income path, the hot one
(``servicekit.hotpath``), has no session: it reads with :func:`income_inputs` in its
first round trip and writes with :func:`add_distribution`, through the unit of work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, literal_column, select, update
from sqlmodel import Session

from ipshare.domain.assets import (
    Agreement,
    AgreementKind,
    AgreementStatus,
    Asset,
    AssetKind,
    Author,
    Policy,
)
from ipshare.domain.distributions import (
    Distribution,
    DistributionStatus,
    Line,
    Posting,
)
from ipshare.domain.ledger import Entry
from ipshare.domain.split import Basis
from ipshare.models import (
    AgreementRow,
    AssetRow,
    AuthorRow,
    DistributionRow,
    LedgerEntryRow,
    LineRow,
    PolicyRow,
)
from servicekit.clock import as_utc
from servicekit.hotpath.statements import Load
from servicekit.unit_of_work import AbstractUnitOfWork

ASSETS = AssetRow.__table__
AUTHORS = AuthorRow.__table__
POLICIES = PolicyRow.__table__
AGREEMENTS = AgreementRow.__table__
DISTRIBUTIONS = DistributionRow.__table__
LINES = LineRow.__table__
LEDGER = LedgerEntryRow.__table__


class Repository(Protocol):
    def asset(self, asset_id: str) -> Asset | None: ...
    def is_author(self, asset_id: str, researcher_id: str) -> bool: ...
    def add_asset(self, asset: Asset) -> None: ...
    def agreement(self, agreement_id: str, *, for_update: bool = False
                  ) -> Agreement | None: ...
    def add_agreement(self, agreement: Agreement) -> None: ...
    def save_agreement(self, agreement: Agreement, now: datetime) -> None: ...
    def policy(self, institution_id: str) -> tuple[Policy, datetime | None]: ...
    def add_policy(self, policy: Policy, changed_by: str, now: datetime) -> None: ...
    def distribution(self, distribution_id: str, *, for_update: bool = False
                     ) -> Distribution | None: ...
    def save_reversal(self, distribution: Distribution, reversal: Posting) -> None: ...


# --- the income path (hot: no session) -----------------------------------------------------

# Built once: building and keying a statement per request costs about as much CPU as
# executing it.
_LOCK_AGREEMENT = (
    select(AGREEMENTS.c.id, AGREEMENTS.c.asset_id, AGREEMENTS.c.institution_id,
           AGREEMENTS.c.kind, AGREEMENTS.c.status, ASSETS.c.source_grant_id)
    .join(ASSETS, ASSETS.c.id == AGREEMENTS.c.asset_id)
    .where(AGREEMENTS.c.id == bindparam("lock_agreement_id"))
    .with_for_update(of=AGREEMENTS)
)
# In the SQL text, not a bound parameter: once psycopg prepares a statement (its fifth
# run on a connection) PostgreSQL may switch to a generic plan, and a generic plan cannot
# prove a parameter equal to the partial index's `status = 'posted'`; it then reads
# every distribution of the agreement instead of one index entry, on every posting.
_IS_STANDING = DISTRIBUTIONS.c.status == literal_column(f"'{DistributionStatus.POSTED.value}'")
_LATEST = POLICIES.alias("latest")
_LATEST_VERSION = (
    select(func.max(_LATEST.c.version))
    .where(_LATEST.c.institution_id == AGREEMENTS.c.institution_id)
    .scalar_subquery()
)
_STANDING_ID = (
    select(DISTRIBUTIONS.c.id)
    .where(DISTRIBUTIONS.c.agreement_id == AGREEMENTS.c.id,
           DISTRIBUTIONS.c.reference == bindparam("inputs_reference"),
           _IS_STANDING)
    .limit(1)
    .scalar_subquery()
)
# What an income posting reads once it holds the agreement's lock, in one statement: the
# asset's authors (one row each, or one row of NULLs), the institution's current policy
# and the distribution (if any) that already stands under the same reference.
_INCOME_INPUTS = (
    select(AUTHORS.c.researcher_id, AUTHORS.c.name, AUTHORS.c.contribution_bp,
           POLICIES.c.researcher_share_bp, POLICIES.c.basis, POLICIES.c.version,
           _STANDING_ID.label("standing_id"))
    .select_from(
        AGREEMENTS
        .outerjoin(AUTHORS, AUTHORS.c.asset_id == AGREEMENTS.c.asset_id)
        .outerjoin(POLICIES, and_(POLICIES.c.institution_id == AGREEMENTS.c.institution_id,
                                  POLICIES.c.version == _LATEST_VERSION)))
    .where(AGREEMENTS.c.id == bindparam("inputs_agreement_id"))
    .order_by(AUTHORS.c.position)
)


@dataclass(frozen=True)
class IncomeInputs:
    """What posting income on an agreement decides on."""

    agreement: Agreement
    policy: Policy
    authors: list[Author]
    standing_id: str | None  # a posted distribution with the same reference


def income_inputs_query(agreement_id: str, reference: str) -> tuple[Any, dict[str, Any]]:
    """The read of the policy, authors and standing reference: keyed by the agreement
    only, so that it can be sent with the lock that precedes it."""
    return _INCOME_INPUTS, {"inputs_agreement_id": agreement_id,
                            "inputs_reference": reference}


def income_inputs(agreement_id: str, reference: str) -> Load[IncomeInputs | None]:
    """The agreement, locked for the posting, then (read after the lock, so a concurrent
    posting of the same reference has committed, and shows as standing, or has not
    started) its institution's policy, its asset's authors and the distribution standing
    under ``reference``; None when there is no such agreement."""
    return Load([(_LOCK_AGREEMENT, {"lock_agreement_id": agreement_id}),
                 income_inputs_query(agreement_id, reference)], _income_inputs)


def _income_inputs(locked: Sequence[Any], inputs: Sequence[Any]) -> IncomeInputs | None:
    if not locked:
        return None
    row, first = locked[0], inputs[0]
    agreement = Agreement(row.id, row.asset_id, row.institution_id, AgreementKind(row.kind),
                          row.source_grant_id, AgreementStatus(row.status))
    policy = Policy(row.institution_id) if first.version is None else Policy(
        row.institution_id, first.researcher_share_bp, Basis(first.basis), first.version)
    authors = [Author(r.researcher_id, r.name, r.contribution_bp)
               for r in inputs if r.researcher_id is not None]
    return IncomeInputs(agreement, policy, authors, first.standing_id)


def add_distribution(uow: AbstractUnitOfWork, distribution: Distribution) -> None:
    """Write a posted distribution (its lines and its posting) through ``uow``."""
    d = distribution
    uow.insert(DISTRIBUTIONS, [{
        "id": d.id, "agreement_id": d.agreement_id, "asset_id": d.asset_id,
        "institution_id": d.institution_id, "source_grant_id": d.source_grant_id,
        "reference": d.reference, "period": d.period, "gross_vnd": d.gross_vnd,
        "costs_vnd": d.costs_vnd, "basis_vnd": d.basis_vnd,
        "researcher_pool_vnd": d.researcher_pool_vnd, "institution_vnd": d.institution_vnd,
        "researcher_share_bp": d.policy.researcher_share_bp, "basis": d.policy.basis.value,
        "policy_version": d.policy.version, "in_kind": d.in_kind, "status": d.status.value,
        "created_by": d.created_by, "created_at": d.created_at,
    }])
    uow.insert(LINES, [{"distribution_id": d.id, "seq": i, "payee_id": ln.payee_id,
                        "payee_kind": ln.payee_kind, "amount_vnd": ln.amount_vnd}
                       for i, ln in enumerate(d.lines)])
    uow.insert(LEDGER, ledger_rows(d, d.postings[0]))


def ledger_rows(distribution: Distribution, posting: Posting) -> list[dict[str, Any]]:
    return [
        {"posting_id": posting.id, "seq": i, "kind": posting.kind,
         "distribution_id": distribution.id, "institution_id": distribution.institution_id,
         "account": e.account, "amount_vnd": e.amount_vnd, "payee_id": e.payee_id,
         "payee_kind": e.payee_kind, "reference": distribution.reference,
         "created_at": posting.at}
        for i, e in enumerate(posting.entries)]


# --- the busiest read (servicekit.hotpath.reads: no session) ------------------------------

_DISTRIBUTION_BY_ID = select(DISTRIBUTIONS).where(
    DISTRIBUTIONS.c.id == bindparam("distribution_id"))
_LINES_OF = (select(LINES).where(LINES.c.distribution_id == bindparam("distribution_id"))
             .order_by(LINES.c.seq))


def distribution_load(distribution_id: str) -> Load[Distribution | None]:
    """A distribution with its lines (without its postings), in one round trip."""
    key = {"distribution_id": distribution_id}
    return Load([(_DISTRIBUTION_BY_ID, key), (_LINES_OF, key)], _loaded_distribution)


def _loaded_distribution(found: Sequence[Any], lines: Sequence[Any]) -> Distribution | None:
    if not found:
        return None
    return _distribution(found[0], [Line(ln.payee_id, ln.payee_kind, ln.amount_vnd)
                                    for ln in lines], {})


# --- everything else, on the request's session ---------------------------------------------

_AUTHORS_OF = (
    select(AUTHORS.c.asset_id, AUTHORS.c.researcher_id, AUTHORS.c.name,
           AUTHORS.c.contribution_bp)
    .where(AUTHORS.c.asset_id.in_(bindparam("authors_asset_ids", expanding=True)))
    .order_by(AUTHORS.c.asset_id, AUTHORS.c.position)
)
_CURRENT_POLICY = (
    select(POLICIES.c.researcher_share_bp, POLICIES.c.basis, POLICIES.c.version,
           POLICIES.c.created_at)
    .where(POLICIES.c.institution_id == bindparam("policy_institution_id"))
    .order_by(POLICIES.c.version.desc())
    .limit(1)
)


class SqlRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # assets

    def asset(self, asset_id: str) -> Asset | None:
        row = self.session.get(AssetRow, asset_id)
        return None if row is None else self.assets([row])[0]

    def assets(self, rows: Sequence[AssetRow]) -> list[Asset]:
        """The assets of ``rows``, their authors read in one statement."""
        authors: dict[str, list[Author]] = defaultdict(list)
        if rows:
            for a in self.session.execute(_AUTHORS_OF,
                                          {"authors_asset_ids": [r.id for r in rows]}):
                authors[a.asset_id].append(Author(a.researcher_id, a.name, a.contribution_bp))
        return [Asset(r.id, r.institution_id, AssetKind(r.kind), r.title, authors[r.id],
                      r.source_grant_id, r.source_result_id, r.registered_by,
                      as_utc(r.created_at)) for r in rows]

    def is_author(self, asset_id: str, researcher_id: str) -> bool:
        return self.session.execute(select(AuthorRow.asset_id).where(
            AuthorRow.asset_id == asset_id, AuthorRow.researcher_id == researcher_id)
        ).first() is not None

    def add_asset(self, asset: Asset) -> None:
        self.session.add(AssetRow(
            id=asset.id, institution_id=asset.institution_id, kind=asset.kind.value,
            title=asset.title, source_grant_id=asset.source_grant_id,
            source_result_id=asset.source_result_id, registered_by=asset.registered_by,
            created_at=asset.created_at))
        self.session.flush()  # the asset before its authors, which refer to it
        self.session.add_all(AuthorRow(asset_id=asset.id, researcher_id=a.researcher_id,
                                       position=i, name=a.name,
                                       contribution_bp=a.contribution_bp)
                             for i, a in enumerate(asset.authors))
        self.session.flush()

    # agreements

    def agreement(self, agreement_id: str, *, for_update: bool = False) -> Agreement | None:
        stmt = select(AgreementRow, AssetRow.source_grant_id).join(
            AssetRow, AssetRow.id == AgreementRow.asset_id).where(
            AgreementRow.id == agreement_id)
        if for_update:
            stmt = stmt.with_for_update(of=AgreementRow)
        found = self.session.execute(stmt).first()
        return None if found is None else agreement_from_row(*found)

    def agreements(self, rows: Iterable[AgreementRow], source_grant_id: str | None
                   ) -> list[Agreement]:
        """The agreements of ``rows``, all on one asset (of ``source_grant_id``)."""
        return [agreement_from_row(r, source_grant_id) for r in rows]

    def add_agreement(self, agreement: Agreement) -> None:
        a = agreement
        self.session.add(AgreementRow(
            id=a.id, asset_id=a.asset_id, institution_id=a.institution_id,
            kind=a.kind.value, counterparty=a.counterparty, signed_on=a.signed_on,
            terms=a.terms, status=a.status.value, created_at=a.created_at,
            updated_at=a.created_at))
        self.session.flush()

    def save_agreement(self, agreement: Agreement, now: datetime) -> None:
        self.session.execute(update(AGREEMENTS).where(AGREEMENTS.c.id == agreement.id).values(
            status=agreement.status.value, termination_reason=agreement.termination_reason,
            updated_at=now))

    # policies

    def policy(self, institution_id: str) -> tuple[Policy, datetime | None]:
        """The institution's current policy (version 0, the statutory default, when it
        set none) and when it was set."""
        row = self.session.execute(_CURRENT_POLICY,
                                   {"policy_institution_id": institution_id}).first()
        if row is None:
            return Policy(institution_id), None
        return Policy(institution_id, row.researcher_share_bp, Basis(row.basis),
                      row.version), as_utc(row.created_at)

    def add_policy(self, policy: Policy, changed_by: str, now: datetime) -> None:
        self.session.add(PolicyRow(institution_id=policy.institution_id,
                                   version=policy.version,
                                   researcher_share_bp=policy.researcher_share_bp,
                                   basis=policy.basis.value, changed_by=changed_by,
                                   created_at=now))
        self.session.flush()

    # distributions

    def distribution(self, distribution_id: str, *, for_update: bool = False
                     ) -> Distribution | None:
        """The distribution with its lines; ``for_update``: locked for a command, with
        its postings too."""
        stmt = select(DISTRIBUTIONS).where(DISTRIBUTIONS.c.id == distribution_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.session.execute(stmt).first()
        if row is None:
            return None
        return self.distributions([row], with_postings=for_update)[0]

    def distributions(self, rows: Sequence[Any], *, with_postings: bool = False
                      ) -> list[Distribution]:
        """The distributions of ``rows``: their lines (and postings) in one statement each."""
        ids = [r.id for r in rows]
        lines: dict[str, list[Line]] = defaultdict(list)
        postings: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        if ids:
            for ln in self.session.execute(
                    select(LINES).where(LINES.c.distribution_id.in_(ids))
                    .order_by(LINES.c.distribution_id, LINES.c.seq)):
                lines[ln.distribution_id].append(Line(ln.payee_id, ln.payee_kind,
                                                      ln.amount_vnd))
            if with_postings:
                for e in self.session.execute(
                        select(LEDGER).where(LEDGER.c.distribution_id.in_(ids))
                        .order_by(LEDGER.c.id)):
                    postings[e.distribution_id].setdefault(e.posting_id, []).append(e)
        return [_distribution(r, lines[r.id], postings[r.id]) for r in rows]

    def save_reversal(self, distribution: Distribution, reversal: Posting) -> None:
        d = distribution
        self.session.execute(update(DISTRIBUTIONS).where(DISTRIBUTIONS.c.id == d.id).values(
            status=d.status.value, reversed_at=d.reversed_at,
            reversal_reason=d.reversal_reason))
        self.session.execute(LEDGER.insert(), ledger_rows(d, reversal))


def agreement_from_row(row: AgreementRow, source_grant_id: str | None) -> Agreement:
    return Agreement(
        id=row.id, asset_id=row.asset_id, institution_id=row.institution_id,
        kind=AgreementKind(row.kind), source_grant_id=source_grant_id,
        status=AgreementStatus(row.status), counterparty=row.counterparty,
        signed_on=row.signed_on, terms=row.terms, termination_reason=row.termination_reason,
        created_at=as_utc(row.created_at))


def _distribution(row: Any, lines: list[Line], postings: dict[str, list[Any]]
                  ) -> Distribution:
    return Distribution(
        id=row.id, agreement_id=row.agreement_id, asset_id=row.asset_id,
        institution_id=row.institution_id, source_grant_id=row.source_grant_id,
        reference=row.reference, period=row.period, gross_vnd=row.gross_vnd,
        costs_vnd=row.costs_vnd, basis_vnd=row.basis_vnd,
        researcher_pool_vnd=row.researcher_pool_vnd, institution_vnd=row.institution_vnd,
        policy=Policy(row.institution_id, row.researcher_share_bp, Basis(row.basis),
                      row.policy_version),
        lines=lines, in_kind=row.in_kind, created_by=row.created_by,
        created_at=as_utc(row.created_at),
        postings=[Posting(pid, entries[0].kind, as_utc(entries[0].created_at),
                          tuple(Entry(e.account, e.amount_vnd, e.payee_id, e.payee_kind)
                                for e in sorted(entries, key=lambda e: e.seq)))
                  for pid, entries in postings.items()],
        status=DistributionStatus(row.status), reversal_reason=row.reversal_reason,
        reversed_at=as_utc(row.reversed_at) if row.reversed_at else None)
