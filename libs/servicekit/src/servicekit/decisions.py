"""Decision registers: the number of each formal decision, per register and year.

Vietnamese administrative documents are numbered from 1 at the start of each year in the
issuing body's register (Decree 30/2020/NĐ-CP: "Số: 17/QĐ-BKHCN"). A register is named by
its symbol (``QĐ-MOST`` for the grants decisions of agency MOST, ``QĐ-TNKS-SBV`` for the
sandbox decisions the State Bank supervises); each service keeps its own registers in its
own database, so no two services share a counter.

:func:`take_number` takes the next number inside the decision's own transaction: one
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` that creates the year's row or bumps
it, holding the row's lock until the transaction ends. A concurrent decision in the same
register waits for that commit and takes the following number; a decision rolled back
gives its number back. So the numbers of a register's year run 1, 2, 3, ... with no gap
and no repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel


class DecisionRegisterRow(SQLModel, table=True):
    """The last number given in a register (``name``: its symbol) for a year."""

    __tablename__ = "decision_registers"

    name: str = Field(primary_key=True, max_length=100)
    year: int = Field(primary_key=True)
    last_no: int = Field(sa_column=Column(BigInteger, nullable=False))


REGISTERS = DecisionRegisterRow.__table__


@dataclass(frozen=True)
class DecisionNumber:
    """A formal decision's number: ``decision_no`` ``"17/QĐ-MOST"`` of ``decision_year``."""

    number: int
    register: str
    year: int

    @property
    def decision_no(self) -> str:
        return f"{self.number}/{self.register}"


def grants_register(agency_id: str) -> str:
    """The grants decisions register of an agency: ``QĐ-<agency>``."""
    return f"QĐ-{agency_id}"


def sandbox_register(agency_id: str) -> str:
    """The sandbox decisions register of a supervising agency: ``QĐ-TNKS-<agency>``."""
    return f"QĐ-TNKS-{agency_id}"


def take_number(db: Session | Connection, register: str, year: int) -> DecisionNumber:
    """The next number of ``register`` for ``year``, taken in ``db``'s transaction.

    The row stays locked until that transaction commits or rolls back (see the module's
    docstring); call it as the last read before the decision's writes.
    """
    conn = db.connection() if isinstance(db, Session) else db
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(REGISTERS).values(name=register, year=year, last_no=1)
    statement = insert.on_conflict_do_update(
        index_elements=[REGISTERS.c.name, REGISTERS.c.year],
        set_={"last_no": REGISTERS.c.last_no + 1},
    ).returning(REGISTERS.c.last_no)
    number = conn.execute(statement).scalar_one()
    return DecisionNumber(number=number, register=register, year=year)
