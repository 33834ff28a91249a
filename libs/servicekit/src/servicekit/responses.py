"""JSON responses rendered by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """``JSONResponse`` with the body encoded by orjson: the same JSON (UTF-8, compact)
    several times faster, for the plain values the unit of work answers with."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
