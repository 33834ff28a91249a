"""ipshare's commands: load, call the domain, save, audit and stage the events.

The routes and the event consumer call these; each runs inside a unit of work
(``servicekit.unit_of_work.AbstractUnitOfWork``), which the route commits with its
answer (the consumer's inbox commits its own). A handler never commits, and raises
before writing anything when a rule refuses the command. The unit tests run them on an
in-memory unit of work and repository.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from ipshare import access, events
from ipshare.domain.assets import (
    Agreement,
    AgreementKind,
    Asset,
    AssetKind,
    Author,
    Policy,
    PolicyChanged,
)
from ipshare.domain.distributions import Distribution
from ipshare.domain.split import Basis
from ipshare.repository import IncomeInputs, Repository, add_distribution
from servicekit.auth import Principal
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import AbstractUnitOfWork

DISTRIBUTION = "distribution"


def new_id() -> str:
    return str(uuid.uuid4())


# --- income and distributions --------------------------------------------------------------

def post_income(uow: AbstractUnitOfWork, inputs: IncomeInputs | None, user: Principal,
                agreement_id: str, *, reference: str, period: str, gross_vnd: int,
                costs_vnd: int) -> Distribution:
    """Post income on an agreement: exactly one distribution, split to the đồng. Runs on
    the hot path (``inputs`` read in its first round trip, every write queued)."""
    if inputs is None or not access.can_read_institution_data(
            user, inputs.agreement.institution_id):
        raise NotFound(f"agreement {agreement_id} not found")
    if not access.can_post_income(user, inputs.agreement.institution_id):
        raise Forbidden("only the owning institution or finance records income")
    distribution = Distribution.post(
        id=new_id(), agreement=inputs.agreement,
        source_grant_id=inputs.agreement.source_grant_id, policy=inputs.policy,
        authors=inputs.authors, reference=reference, period=period, gross_vnd=gross_vnd,
        costs_vnd=costs_vnd, standing_id=inputs.standing_id, by=user.sub, now=uow.now)
    add_distribution(uow, distribution)
    uow.record(DISTRIBUTION, distribution.id, "post", to_status=distribution.status.value,
               new=True, data={"reference": reference, "gross_vnd": gross_vnd,
                               "agreement_id": agreement_id})
    events.publish(uow, distribution.events)
    return distribution


def visible_distribution(repo: Repository, user: Principal, distribution_id: str, *,
                         for_update: bool = False) -> Distribution:
    """The distribution if ``user`` may read it; 404 otherwise."""
    return seen_by(user, distribution_id,
                   repo.distribution(distribution_id, for_update=for_update))


def seen_by(user: Principal, distribution_id: str, distribution: Distribution | None
            ) -> Distribution:
    """``distribution`` (found under ``distribution_id``) if ``user`` may read it; 404
    otherwise, as for one that does not exist."""
    if distribution is None or not access.can_read_distribution(user, distribution):
        raise NotFound(f"distribution {distribution_id} not found")
    return distribution


def reverse_distribution(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                         distribution_id: str, reason: str) -> Distribution:
    """Reverse a posted distribution with compensating entries, never an edit."""
    distribution = visible_distribution(repo, user, distribution_id, for_update=True)
    if not access.can_post_income(user, distribution.institution_id):
        raise Forbidden("only the owning institution or finance reverses income")
    before = distribution.status.value
    reversal = distribution.reverse(reversal_id=new_id(), reason=reason, now=uow.now)
    repo.save_reversal(distribution, reversal)
    uow.record(DISTRIBUTION, distribution.id, "reverse", from_status=before,
               to_status=distribution.status.value, reason=reason,
               data={"reversal_id": reversal.id})
    events.publish(uow, distribution.events)
    return distribution


# --- assets and agreements -----------------------------------------------------------------

def register_asset(uow: AbstractUnitOfWork, repo: Repository, *, institution_id: str,
                   kind: AssetKind, title: str, authors: list[Author],
                   source_grant_id: str | None = None, source_result_id: str | None = None,
                   cause: dict[str, Any] | None = None) -> Asset:
    """Register an asset of ``institution_id`` (for an institution's officer, or for a
    result registered on a grant: ``cause`` notes the event in the audit record)."""
    asset = Asset.register(id=new_id(), institution_id=institution_id, kind=kind,
                           title=title, authors=authors, source_grant_id=source_grant_id,
                           source_result_id=source_result_id, by=uow.actor.id, now=uow.now)
    repo.add_asset(asset)
    uow.record("asset", asset.id, "register", to_status="registered", new=True, data=cause)
    events.publish(uow, asset.events)
    return asset


def visible_asset(repo: Repository, user: Principal, asset_id: str) -> Asset:
    """The asset if ``user`` may read it; 404 otherwise."""
    asset = repo.asset(asset_id)
    if asset is None or not access.can_read_asset(user, asset):
        raise NotFound(f"asset {asset_id} not found")
    return asset


def sign_agreement(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                   asset_id: str, *, kind: AgreementKind, counterparty: str,
                   signed_on: date, terms: str) -> Agreement:
    """Sign a licence, assignment or spin-off on the institution's own asset."""
    asset = visible_asset(repo, user, asset_id)
    if not access.owns(user, asset.institution_id):
        raise Forbidden("only the owning institution signs agreements on its assets")
    agreement = Agreement.sign(id=new_id(), asset=asset, kind=kind,
                               counterparty=counterparty, signed_on=signed_on, terms=terms,
                               now=uow.now)
    repo.add_agreement(agreement)
    uow.record("agreement", agreement.id, "sign", to_status=agreement.status.value,
               new=True, data={"asset_id": asset.id, "kind": agreement.kind.value})
    events.publish(uow, agreement.events)
    return agreement


def visible_agreement(repo: Repository, user: Principal, agreement_id: str, *,
                      for_update: bool = False) -> Agreement:
    """The agreement, for its institution, the books, and the authors of its asset (who
    see it in the asset's list too); 404 for anyone else."""
    agreement = repo.agreement(agreement_id, for_update=for_update)
    if agreement is None or not (
            access.can_read_institution_data(user, agreement.institution_id) or (
                user.has("researcher") and repo.is_author(agreement.asset_id, user.sub))):
        raise NotFound(f"agreement {agreement_id} not found")
    return agreement


def terminate_agreement(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                        agreement_id: str, reason: str) -> Agreement:
    """Terminate the institution's own agreement; income on it is refused afterwards."""
    agreement = visible_agreement(repo, user, agreement_id, for_update=True)
    if not access.owns(user, agreement.institution_id):
        raise Forbidden("only the owning institution terminates its agreements")
    before = agreement.status.value
    agreement.terminate(reason, uow.now)
    repo.save_agreement(agreement, uow.now)
    uow.record("agreement", agreement.id, "terminate", from_status=before,
               to_status=agreement.status.value, reason=reason)
    events.publish(uow, agreement.events)
    return agreement


# --- policies ------------------------------------------------------------------------------

def change_policy(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                  institution_id: str, researcher_share_bp: int, basis: Basis) -> Policy:
    """Set the institution's sharing policy; the same policy PUT again is no new version."""
    if not access.owns(user, institution_id):
        raise Forbidden("an institution sets its own policy only")
    policy, _ = repo.policy(institution_id)
    if policy.version and (researcher_share_bp, basis) == (policy.researcher_share_bp,
                                                           policy.basis):
        return policy
    new = policy.changed(researcher_share_bp, basis)
    repo.add_policy(new, user.sub, uow.now)
    uow.record("policy", institution_id, "change", from_status=f"v{policy.version}",
               to_status=f"v{new.version}",
               data={"researcher_share_bp": new.researcher_share_bp, "basis": new.basis})
    events.publish(uow, [PolicyChanged(institution_id, new.researcher_share_bp,
                                       new.basis.value, new.version)])
    return new
