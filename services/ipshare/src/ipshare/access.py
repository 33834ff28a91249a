"""Who may see and act on what in ipshare. Private resources answer 404 to outsiders.

- institution officers: their organisation's assets, agreements, distributions;
- researchers: the assets they author and their own lines only;
- finance, auditors and admins: everything (finance also posts and reverses income).
"""

from __future__ import annotations

from servicekit.auth import Principal

ALL_SEEING = ("finance", "auditor", "admin")


def owns(p: Principal, institution_id: str) -> bool:
    return p.has("institution") and p.org == institution_id


def can_read_institution_data(p: Principal, institution_id: str) -> bool:
    return p.has(*ALL_SEEING) or owns(p, institution_id)


def can_post_income(p: Principal, institution_id: str) -> bool:
    return p.has("finance") or owns(p, institution_id)
