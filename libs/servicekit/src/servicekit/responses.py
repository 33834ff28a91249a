"""JSON responses rendered by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel


class OrjsonResponse(JSONResponse):
    """``JSONResponse`` with the body encoded by orjson: the same JSON (UTF-8, compact)
    several times faster, for the plain values the unit of work answers with."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` answered as FastAPI answers a route's ``response_model``, byte for byte
    (pydantic's JSON, by alias), without validating the model a second time.

    For a plain ``def`` route returning a model it has just built: FastAPI runs the
    second validation in the thread pool, one more thread hop per request.
    """
    return Response(model.__pydantic_serializer__.to_json(model, by_alias=True),
                    status_code=status_code, media_type="application/json")
