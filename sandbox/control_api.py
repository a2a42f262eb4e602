"""Sandbox-only endpoints (no auth, no faults), served on every system's port.

GET /_sandbox/info, GET|DELETE /_sandbox/writes, GET|DELETE /_sandbox/stats,
GET|POST /_sandbox/faults, POST /_sandbox/touch, POST /_sandbox/reset,
GET /_sandbox/scenarios; for the soak: POST /_sandbox/mutate, GET /_sandbox/truth.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.faults import FaultConfig
from sandbox.http_json import json_body, json_response
from sandbox.soak_data import mutate, truth
from sandbox.state import SandboxState
from sandbox.touch import touch


def info(state: SandboxState) -> dict:
    p = state.params
    return {"seed": p.seed, "today": p.today.isoformat(), "scale": p.scale,
            "time_entries": len(state.data.time_entries), "urls": state.urls,
            "credentials": vars(state.credentials)}


def add_control_routes(app: FastAPI, state: SandboxState) -> None:
    @app.get("/_sandbox/info")
    async def info_route() -> Response:
        return json_response(info(state))

    @app.get("/_sandbox/writes")
    async def writes_route(request: Request) -> Response:
        system = request.query_params.get("system")
        with state.lock:
            rows = [w for w in state.writes if not system or w["system"] == system]
        return json_response(rows)

    @app.delete("/_sandbox/writes")
    async def clear_writes_route() -> Response:
        with state.lock:
            state.writes.clear()
        return json_response({"cleared": True})

    @app.get("/_sandbox/stats")
    async def stats_route() -> Response:
        return json_response(state.faults.stats())

    @app.delete("/_sandbox/stats")
    async def clear_stats_route() -> Response:
        state.faults.reset_stats()
        return json_response({"cleared": True})

    @app.get("/_sandbox/faults")
    async def faults_route() -> Response:
        return json_response(state.faults.config.to_dict())

    @app.post("/_sandbox/faults")
    async def set_faults_route(request: Request) -> Response:
        try:
            body = await json_body(request) or {}
            reset = bool(body.pop("reset", False))
            base = FaultConfig(seed=state.params.seed) if reset else state.faults.config
            config = FaultConfig.from_dict(body, base)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        state.faults.set_config(config)
        return json_response(config.to_dict())

    @app.post("/_sandbox/touch")
    async def touch_route(request: Request) -> Response:
        try:
            body = await json_body(request) or {}
            result = touch(state, body.get("system", ""), body.get("resource", ""),
                           int(body.get("count", 1)), body.get("ids"), body.get("changes"))
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(result)

    @app.post("/_sandbox/reset")
    async def reset_route() -> Response:
        state.rebuild()
        state.faults.reset_stats()
        return json_response(info(state))

    @app.post("/_sandbox/mutate")
    async def mutate_route(request: Request) -> Response:
        try:
            body = await json_body(request) or {}
            counts = {k: int(body.get(k, d)) for k, d in
                      (("new", 1), ("updated", 5), ("deleted", 1), ("bad", 1))}
            result = mutate(state, int(body.get("seed", 0)), **counts)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(result)

    @app.get("/_sandbox/truth")
    async def truth_route() -> Response:
        return json_response(truth(state))

    @app.get("/_sandbox/scenarios")
    async def scenarios_route() -> Response:
        return json_response(state.data.scenarios)
