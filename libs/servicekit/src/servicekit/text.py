"""Text as request bodies carry it: the pydantic type for every free-text field.

``Text`` is a string trimmed of surrounding whitespace, in Unicode NFC (a reference or
a name typed with combining accents, as some Vietnamese keyboards send them, is the same
text as its precomposed form) and without NUL, which PostgreSQL cannot store in text
(SQLite can: the two would disagree). Pydantic already refuses what is not Unicode
(a lone surrogate). Give each field its length limits with ``Field``: they apply to the
trimmed text, so a blank value fails ``min_length=1``.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return unicodedata.normalize("NFC", value)


Text = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_clean)]
