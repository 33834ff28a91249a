"""The call commands of an agency's programme managers: draft, edit, open, close and
cancel a call."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from grants import access, events
from grants.domain.calls import Call, ReviewMode, ReviewTier
from grants.handlers import CALL, new_id
from grants.handlers.releases import release_open
from grants.repository import Repository
from servicekit.auth import Principal
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import AbstractUnitOfWork


@dataclass(frozen=True)
class CallTerms:
    """What a programme manager drafts, or sets anew in a draft: the call's terms."""

    title: str
    description: str
    budget_vnd: int
    max_award_vnd: int
    opens_at: datetime
    closes_at: datetime
    min_reviews: int
    review_mode: ReviewMode = ReviewMode.OPEN
    review_tiers: tuple[ReviewTier, ...] = ()
    requires_endorsement: bool = False


def drafted(call_id: str, agency_id: str, terms: CallTerms) -> Call:
    """The call ``terms`` describe, checked by the domain's rules."""
    return Call.draft(id=call_id, agency_id=agency_id,
                      **{term.name: getattr(terms, term.name) for term in fields(terms)})


# --- loading -------------------------------------------------------------------------------

def visible_call(repo: Repository, user: Principal | None, call_id: str, *,
                 for_update: bool = False) -> Call:
    """The call if it is published or ``user`` sees its agency's drafts; 404 otherwise."""
    call = repo.call(call_id, for_update=for_update)
    if call is None or (not call.published
                        and not access.sees_call_drafts(user, call.agency_id)):
        raise NotFound(f"call {call_id} not found")
    return call


def own_agency_call(repo: Repository, user: Principal, call_id: str) -> Call:
    """The call, locked for the change, if ``user`` acts for its agency; 403 otherwise."""
    call = visible_call(repo, user, call_id, for_update=True)
    if not access.acts_for_agency(user, call.agency_id):
        raise Forbidden(f"call {call_id} belongs to agency {call.agency_id}; "
                        "programme managers act only on their own agency's calls")
    return call


# --- the programme manager's commands ------------------------------------------------------

def create_call(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
                terms: CallTerms) -> Call:
    """Draft a call of the programme manager's agency."""
    call = drafted(new_id(), user.org, terms)
    repo.add_call(call, created_by=user.sub, now=uow.now)
    uow.record(CALL, call.id, "draft", to_status=call.status.value, new=True)
    return call


def edit_call(uow: AbstractUnitOfWork, repo: Repository, user: Principal, call_id: str,
              terms: CallTerms) -> Call:
    """Set a draft's terms anew; the audit record keeps each change."""
    call = own_agency_call(repo, user, call_id)
    changes = call.revise(drafted(call.id, call.agency_id, terms))
    repo.save_call(call, uow.now)
    uow.record(CALL, call.id, "edit", from_status=call.status.value,
               to_status=call.status.value, data={"changes": changes})
    return call


def open_call(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
              call_id: str) -> Call:
    """Open a draft for submissions (``call.opened``)."""
    call = own_agency_call(repo, user, call_id)
    before = call.status.value
    call.open(uow.now)
    _save(uow, repo, call, "open", before=before)
    return call


def close_call(uow: AbstractUnitOfWork, repo: Repository, user: Principal,
               call_id: str) -> Call:
    """Close an open call (``call.closed``)."""
    call = own_agency_call(repo, user, call_id)
    before = call.status.value
    call.close()
    _save(uow, repo, call, "close", before=before)
    return call


def cancel_call(uow: AbstractUnitOfWork, repo: Repository, user: Principal, call_id: str,
                reason: str) -> Call:
    """Cancel a call none of whose applications is decided, with a reason; its open
    reviewer assignments are released. The call's row lock makes a decision on one of
    its applications wait."""
    call = own_agency_call(repo, user, call_id)
    before = call.status.value
    call.cancel(reason, decided=repo.decided_applications(call.id), now=uow.now)
    _save(uow, repo, call, "cancel", before=before, reason=reason)
    release_open(uow, repo, "the call was cancelled", call_id=call.id)
    return call


def _save(uow: AbstractUnitOfWork, repo: Repository, call: Call, action: str, *,
          before: str, reason: str | None = None) -> None:
    """The call's new state, its audit record and its events."""
    repo.save_call(call, uow.now)
    uow.record(CALL, call.id, action, from_status=before, to_status=call.status.value,
               reason=reason)
    events.publish(uow, call.events)
