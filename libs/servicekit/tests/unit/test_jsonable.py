"""``jsonable`` gives exactly ``jsonable_encoder``'s output for what commands pass."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from fastapi.encoders import jsonable_encoder
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from servicekit.unit_of_work import jsonable


class Kind(enum.Enum):
    CASH = "cash"


class Line(BaseModel):
    payee_id: str
    amount_vnd: int
    at: datetime
    kind: Kind = Kind.CASH


class Read(BaseModel):
    id: str
    lines: list[Line]
    on: date | None = None
    note: str | None = Field(default=None, alias="noteText")


WHEN = datetime(2026, 11, 23, 9, 30, 0, 123456, tzinfo=UTC)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                    st.floats(allow_nan=False), st.datetimes(timezones=st.just(UTC)),
                    st.dates(), st.uuids(), st.sampled_from(list(Kind)))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


@given(values)
def test_plain_values_encode_as_jsonable_encoder_does(value):
    assert jsonable(value) == jsonable_encoder(value)


def test_models_keys_and_fallbacks_encode_as_jsonable_encoder_does():
    model = Read(id="d-1", lines=[Line(payee_id="r-1", amount_vnd=10**15, at=WHEN)],
                 on=date(2026, 11, 23), noteText="đồng")
    value = {"model": model, "models": [model, model], "_sa_instance_state": object(),
             "amount": Decimal("1.5"), "id": uuid.UUID(int=7), 3: "int key",
             "when": WHEN, "nested": {"_sa_x": 1, "kept": (Kind.CASH, None)}}

    assert jsonable(value) == jsonable_encoder(value)
    assert jsonable(model)["noteText"] == "đồng"  # by alias, as jsonable_encoder
