"""Double-entry postings for distributions and their reversals (domain.md §3).

Signed amounts: debit positive, credit negative; every posting sums to zero.

An income of ``gross`` posts:

- Dr ``income:clearing``                           gross
- Cr ``payable:researcher:<id>``                   each researcher line
- Cr ``payable:institution:<id>``                  institution line − declared costs
- Cr ``costs:recovered:institution:<id>``          declared costs (net basis: the
  institution bears them; its line, gross − pool, is the sum of its two accounts)

A reversal posts the same entries negated; nothing is ever edited.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipshare.domain.split import Split

CLEARING = "income:clearing"


@dataclass(frozen=True)
class Entry:
    account: str
    amount_vnd: int  # debit +, credit −
    payee_id: str | None
    payee_kind: str | None


def researcher_account(researcher_id: str) -> str:
    return f"payable:researcher:{researcher_id}"


def institution_account(institution_id: str) -> str:
    return f"payable:institution:{institution_id}"


def costs_account(institution_id: str) -> str:
    return f"costs:recovered:institution:{institution_id}"


def income_entries(split: Split, institution_id: str) -> list[Entry]:
    entries = [Entry(CLEARING, split.gross_vnd, None, None)]
    entries += [Entry(researcher_account(rid), -amount, rid, "researcher")
                for rid, amount in split.researcher_lines]
    entries.append(Entry(institution_account(institution_id),
                         -(split.institution_vnd - split.costs_vnd), institution_id,
                         "institution"))
    if split.costs_vnd:
        entries.append(Entry(costs_account(institution_id), -split.costs_vnd,
                             institution_id, "institution"))
    if sum(e.amount_vnd for e in entries) != 0:  # pragma: no cover - arithmetic guard
        raise AssertionError("unbalanced posting")
    return entries


def reversing_entries(entries: list[Entry]) -> list[Entry]:
    return [Entry(e.account, -e.amount_vnd, e.payee_id, e.payee_kind) for e in entries]
