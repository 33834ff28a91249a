"""Agreements: read, terminate (``/v1/agreements/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter

from ipshare import access, events
from ipshare.api.assets import Institution, agreement_read, is_author
from ipshare.api.deps import Limit
from ipshare.models import AgreementRow
from ipshare.schemas import AgreementRead, Reason
from ipshare.store import agreement_from_row
from servicekit.audit import HistoryPage, history
from servicekit.auth import CurrentPrincipal, Principal
from servicekit.problems import Forbidden, NotFound
from servicekit.unit_of_work import SessionDep, UnitOfWorkDep

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


def visible(session, agreement_id: str, user: Principal) -> AgreementRow:
    """The agreement, for its institution, the books, and the authors of its asset (who
    see it in the asset's list too)."""
    row = session.get(AgreementRow, agreement_id)
    if row is None or not (access.can_read_institution_data(user, row.institution_id) or (
            user.has("researcher") and is_author(session, row.asset_id, user.sub))):
        raise NotFound(f"agreement {agreement_id} not found")
    return row


@router.get("/{agreement_id}", response_model=AgreementRead, summary="One agreement")
def read_agreement(agreement_id: str, session: SessionDep, user: CurrentPrincipal):
    return agreement_read(visible(session, agreement_id, user))


@router.post("/{agreement_id}/terminate", response_model=AgreementRead,
             summary="Terminate with a reason; income on it is refused afterwards")
def terminate_agreement(agreement_id: str, body: Reason, user: Institution,
                        uow: UnitOfWorkDep):
    row = visible(uow.session, agreement_id, user)
    if not access.owns(user, row.institution_id):
        raise Forbidden("only the owning institution terminates its agreements")
    uow.session.refresh(row, with_for_update=True)
    agreement = agreement_from_row(row)
    agreement.terminate(body.reason, uow.now)
    row.status = agreement.status.value
    row.termination_reason = body.reason
    row.updated_at = uow.now
    uow.record("agreement", row.id, "terminate", from_status="active",
               to_status=row.status, reason=body.reason)
    events.publish(uow, agreement.events)
    uow.session.flush()
    return uow.commit(agreement_read(row))


@router.get("/{agreement_id}/history", response_model=HistoryPage,
            summary="The agreement's audit trail")
def read_agreement_history(agreement_id: str, session: SessionDep, user: CurrentPrincipal,
                           limit: Limit = 100, cursor: str | None = None) -> HistoryPage:
    visible(session, agreement_id, user)
    return history(session, "agreement", agreement_id, limit=limit, cursor=cursor)
