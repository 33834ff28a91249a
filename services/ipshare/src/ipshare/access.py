"""Who may see and act on what in ipshare. Private resources answer 404 to outsiders.

- institution officers: their organisation's assets, agreements, distributions;
- researchers: the assets they author and their own lines only;
- finance, auditors and admins: everything (finance also posts and reverses income).
"""

from __future__ import annotations

from ipshare.domain.assets import Asset
from ipshare.domain.distributions import Distribution, Line
from servicekit.auth import Principal

ALL_SEEING = ("finance", "auditor", "admin")


def owns(p: Principal, institution_id: str) -> bool:
    return p.has("institution") and p.org == institution_id


def can_read_institution_data(p: Principal, institution_id: str) -> bool:
    return p.has(*ALL_SEEING) or owns(p, institution_id)


def can_post_income(p: Principal, institution_id: str) -> bool:
    return p.has("finance") or owns(p, institution_id)


def can_read_asset(p: Principal, asset: Asset) -> bool:
    """Its institution, the books, and its authors."""
    return can_read_institution_data(p, asset.institution_id) or (
        p.has("researcher") and asset.is_author(p.sub))


def owns_line(p: Principal, line: Line) -> bool:
    """A researcher's line: matched on the id *and* the kind, so a researcher whose
    ``sub`` happens to equal an organisation's id never reads that institution's line."""
    return line.payee_kind == "researcher" and line.payee_id == p.sub


def can_read_distribution(p: Principal, distribution: Distribution) -> bool:
    """Its institution, the books, and the researchers it pays (who see the totals and
    their own line only)."""
    return can_read_institution_data(p, distribution.institution_id) or (
        p.has("researcher") and any(owns_line(p, ln) for ln in distribution.lines))


def can_read_policy(p: Principal, institution_id: str) -> bool:
    """The institution, the books, and its researchers (whose share the policy sets)."""
    return can_read_institution_data(p, institution_id) or (
        p.has("researcher") and p.org == institution_id)
