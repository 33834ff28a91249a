"""``servicekit.inputs.integer``: what JSON Schema calls an integer, and nothing else."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from servicekit.inputs import integer


class Income(BaseModel):
    gross_vnd: integer(gt=0, le=10**15)


@pytest.mark.parametrize(("sent", "kept"), [
    ("3", 3), ("3.0", 3), ("1000000007.0", 1_000_000_007), ("1e3", 1000),
    ("1000000000000000", 10**15), ("1E15", 10**15)])
def test_a_whole_number_is_the_integer_it_names_however_it_is_written(sent, kept):
    income = Income.model_validate_json(f'{{"gross_vnd": {sent}}}')
    assert income.gross_vnd == kept and type(income.gross_vnd) is int


@pytest.mark.parametrize("sent", [
    "3.5", "0.1", '"3"', "true", "null", "1e300", "9007199254740993.0", "NaN",
    "0", "-1.0", "1000000000000001", "1e16"])
def test_a_fraction_text_a_boolean_or_a_number_out_of_bounds_is_refused(sent):
    with pytest.raises(ValidationError):
        Income.model_validate_json(f'{{"gross_vnd": {sent}}}')


def test_the_document_says_integer_with_its_bounds():
    schema = Income.model_json_schema()["properties"]["gross_vnd"]
    assert schema == {"type": "integer", "exclusiveMinimum": 0, "maximum": 10**15,
                      "title": "Gross Vnd"}


def test_beyond_two_to_the_53_a_float_is_refused_even_when_whole():
    class Big(BaseModel):
        n: integer()

    assert Big.model_validate({"n": 2.0**53}).n == 2**53
    with pytest.raises(ValidationError):
        Big.model_validate({"n": 2.0**53 + 2})
    assert Big.model_validate({"n": 2**60}).n == 2**60  # a JSON integer is exact
