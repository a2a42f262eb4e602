"""ASGI middleware in front of every system: faults, rate limits, stats, write log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from sandbox.state import SandboxState


class DroppedConnection(Exception):
    """Raised after a partial answer so that uvicorn closes the connection."""


class _HideDropped(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_HideDropped())


@dataclass
class SystemStyle:
    """How one system answers faults and which requests are writes."""

    name: str
    is_write: Callable[[str, str], bool]
    limit_key: Callable[[dict[str, str], str], str]
    fault_response: Callable[[int, int | None], Response]


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


class FaultMiddleware:
    def __init__(self, app, state: SandboxState, style: SystemStyle) -> None:
        self.app, self.state, self.style = app, state, style

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        is_write = self.style.is_write(method, path)
        body = await _read_body(receive)
        faults = self.state.faults
        key = self.style.limit_key(headers, path)
        verdict = faults.decide(self.style.name, key, is_write)
        if verdict.status is not None:
            if verdict.latency_s:
                await asyncio.sleep(verdict.latency_s)
            response = self.style.fault_response(verdict.status, verdict.retry_after)
            await self._finish(scope, send, response, is_write, body, None)
            return
        if not faults.enter(self.style.name, key):
            response = self.style.fault_response(429, None)
            await self._finish(scope, send, response, is_write, body, None)
            return
        try:
            if verdict.latency_s:
                await asyncio.sleep(verdict.latency_s)
            await self._call_app(scope, body, send, is_write, verdict.lose_response)
        finally:
            faults.leave(key)

    async def _call_app(self, scope, body: bytes, send, is_write: bool, lose: bool) -> None:
        replay = _replayer(body)
        if not is_write:
            async def counting_send(message) -> None:
                if message["type"] == "http.response.start":
                    self.state.faults.count_response(self.style.name, message["status"])
                await send(message)
            await self.app(scope, replay, counting_send)
            return
        captured: dict[str, Any] = {"body": b""}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, replay, capture)
        answer = Response(captured["body"], status_code=captured["status"])
        answer.raw_headers = list(captured["headers"])
        mode = self.state.faults.config.lost_response_mode if lose else None
        await self._finish(scope, send, answer, True, body, mode)

    async def _finish(self, scope, send, response: Response, is_write: bool, body: bytes,
                      lost_mode: str | None) -> None:
        if is_write:
            self._log(scope, response, body, lost_mode)
            config = self.state.faults.config
            if config.answer_latency_ms and config.applies(self.style.name):
                await asyncio.sleep(config.answer_latency_ms / 1000)
        if lost_mode == "drop":
            self.state.faults.count_response(self.style.name, 0)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise DroppedConnection("sandbox dropped the connection after applying a write")
        if lost_mode:
            response = self.style.fault_response(504, None)
        self.state.faults.count_response(self.style.name, response.status_code)
        await response(scope, _no_receive, send)

    def _log(self, scope, response: Response, body: bytes, lost_mode: str | None) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in response.raw_headers}
        self.state.log_write({
            "system": self.style.name, "method": scope["method"], "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"), "body": _decode(body),
            "status": response.status_code, "location": headers.get("location"),
            "response": _decode(response.body) if response.body else None,
            "lost": lost_mode,
        })


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replayer(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _no_receive():
    return {"type": "http.disconnect"}
