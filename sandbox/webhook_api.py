"""Alert channel (chat incoming webhook, Slack style): POST <path> -> `ok`."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sandbox.middleware import SystemStyle
from sandbox.state import SandboxState


def fault_response(status: int, retry_after: int | None) -> Response:
    if status == 429:
        return PlainTextResponse("rate_limited", 429,
                                 headers={"Retry-After": str(retry_after or 1)})
    return PlainTextResponse("internal_error", status)


STYLE = SystemStyle(
    name="webhook",
    is_write=lambda method, path: method == "POST",
    limit_key=lambda headers, path: path,
    fault_response=fault_response,
)


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Webhook sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/{path:path}")
    async def post_route(path: str, request: Request) -> Response:
        if "/" + path != state.credentials.webhook_path:
            return PlainTextResponse("no_service", 404)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return PlainTextResponse("invalid_payload", 400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body[
                "text"]:
            return PlainTextResponse("invalid_payload", 400)
        return PlainTextResponse("ok", 200)

    return app
