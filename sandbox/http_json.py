"""JSON responses (orjson) and request-body parsing shared by the API modules."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(orjson.dumps(data), status_code=status, headers=headers,
                    media_type="application/json")


async def json_body(request: Request) -> Any:
    """The parsed JSON body; raises ValueError when it is not JSON."""
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from exc


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter; raises ValueError when it is not one."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return int(value)
