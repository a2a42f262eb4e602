"""Runs the five system APIs, each on its own loopback port, in one background thread.

    from sandbox.server import start_sandbox
    sb = start_sandbox(seed=42, port=0)      # 0 = free ports
    sb.urls["psa"], sb.conn_env(), sb.set_faults(error_rate=0.1), sb.writes(), sb.stop()
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import uvicorn
from fastapi import FastAPI

from sandbox import crm_api, erp_api, hris_api, psa_api, webhook_api
from sandbox.control_api import add_control_routes
from sandbox.dataset import DEFAULT_TODAY, Dataset
from sandbox.faults import SYSTEMS, FaultConfig
from sandbox.middleware import FaultMiddleware
from sandbox.state import Credentials, DatasetParams, SandboxState
from sandbox.touch import touch

MODULES = {"crm": crm_api, "psa": psa_api, "erp": erp_api, "hris": hris_api,
           "webhook": webhook_api}
DEFAULT_BASE_PORT = 18081  # crm 18081, psa 18082, erp 18083, hris 18084, webhook 18085
CONN_IDS = {"crm": "CRM_API", "psa": "PSA_API", "erp": "ERP_API", "hris": "HRIS_API",
            "webhook": "ALERTS_WEBHOOK"}


def build_app(state: SandboxState, system: str) -> FastAPI:
    module = MODULES[system]
    app = module.create_app(state)
    add_control_routes(app, state)
    app.add_middleware(FaultMiddleware, state=state, style=module.STYLE)
    return app


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def resolve_ports(port: int | None = None, ports: dict[str, int] | None = None) -> dict:
    """Per-system ports: explicit `ports`, else base `port` + 0..4 (0 = free ports)."""
    base = DEFAULT_BASE_PORT if port is None else port
    chosen = {s: (0 if base == 0 else base + i) for i, s in enumerate(SYSTEMS)}
    chosen.update(ports or {})
    return chosen


def connection_env(credentials: Credentials, host: str, ports: dict[str, int]
                   ) -> dict[str, str]:
    """AIRFLOW_CONN_* variables (Airflow JSON form) for a sandbox at `host`, `ports`."""
    c = credentials
    fields = {
        "crm": {"password": c.crm_token},
        "psa": {"login": c.psa_account_id, "password": c.psa_token},
        "erp": {"login": c.erp_client_id, "password": c.erp_client_secret},
        "hris": {"login": c.hris_api_key, "extra": {"company": c.hris_company}},
        "webhook": {"extra": {"path": c.webhook_path}},
    }
    return {f"AIRFLOW_CONN_{CONN_IDS[s]}": json.dumps(
        {"conn_type": "http", "host": host, "port": ports[s], "schema": "http",
         **fields[s]}) for s in SYSTEMS}


class SandboxHandle:
    """A running sandbox: URLs, Airflow connections, faults, write log, stats."""

    def __init__(self, state: SandboxState, host: str, ports: dict[str, int]) -> None:
        self.state, self.host = state, host
        self._sockets = {s: _bind(host, p) for s, p in ports.items()}
        self.ports = {s: sock.getsockname()[1] for s, sock in self._sockets.items()}
        self.urls = {s: f"http://{host}:{p}" for s, p in self.ports.items()}
        state.urls = dict(self.urls)
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------
    def start(self, timeout: float = 30.0) -> SandboxHandle:
        for system in SYSTEMS:
            config = uvicorn.Config(build_app(self.state, system), log_level="warning",
                                    access_log=False, lifespan="off", timeout_keep_alive=30)
            self._servers.append(uvicorn.Server(config))
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox servers did not start")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        async def serve_all() -> None:
            await asyncio.gather(*(server.serve(sockets=[self._sockets[system]])
                                   for server, system in zip(self._servers, SYSTEMS,
                                                             strict=True)))
        asyncio.run(serve_all())

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        for sock in self._sockets.values():
            sock.close()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what clients need ----------------------------------------------------
    def conn_env(self) -> dict[str, str]:
        """AIRFLOW_CONN_* variables (Airflow JSON form) pointing at this sandbox."""
        return connection_env(self.state.credentials, self.host, self.ports)

    @property
    def credentials(self) -> Credentials:
        return self.state.credentials

    @property
    def dataset(self):
        return self.state.data

    @property
    def scenarios(self) -> dict:
        return self.state.data.scenarios

    # --- control --------------------------------------------------------------
    def set_faults(self, settings: dict[str, Any] | None = None, reset: bool = False,
                   **kwargs: Any) -> FaultConfig:
        """Merge settings into the fault config (reset=True starts from defaults)."""
        base = FaultConfig(seed=self.state.params.seed) if reset else self.state.faults.config
        config = FaultConfig.from_dict({**(settings or {}), **kwargs}, base)
        self.state.faults.set_config(config)
        return config

    def faults(self) -> dict[str, Any]:
        return self.state.faults.config.to_dict()

    def writes(self, system: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(w) for w in self.state.writes if not system or w["system"] == system]

    def clear_writes(self) -> None:
        with self.state.lock:
            self.state.writes.clear()

    def stats(self) -> dict[str, Any]:
        return self.state.faults.stats()

    def reset_stats(self) -> None:
        self.state.faults.reset_stats()

    def touch(self, system: str, resource: str, count: int = 1, ids: list | None = None,
              changes: dict | None = None) -> dict:
        return touch(self.state, system, resource, count, ids, changes)

    def reset_data(self) -> None:
        """Regenerate the dataset (same parameters) and forget writes and ERP tokens."""
        self.state.rebuild()


def start_sandbox(seed: int = 42, today: date | str | None = None, scale: float = 1.0,
                  time_entries: int | None = None, crm_deals: int | None = None,
                  faults: FaultConfig | dict | None = None, port: int | None = 0,
                  ports: dict[str, int] | None = None, host: str = "127.0.0.1",
                  credentials: Credentials | None = None,
                  dataset: Dataset | Callable[[date], Dataset] | None = None) -> SandboxHandle:
    """Build the dataset and serve it; `port=0` picks free ports, `port=N` uses N..N+4.

    `dataset` serves an explicit Dataset (or `f(today) -> Dataset`, e.g.
    `sandbox.scenario.build_scenario_dataset`) instead of the generated firm.
    """
    if isinstance(today, str):
        today = date.fromisoformat(today)
    if today is None and isinstance(dataset, Dataset):
        today = dataset.today
    params = DatasetParams(seed, today or DEFAULT_TODAY, scale, time_entries, crm_deals,
                           dataset)
    if not isinstance(faults, FaultConfig):
        faults = FaultConfig.from_dict(faults, FaultConfig(seed=seed))
    state = SandboxState.create(params, faults, credentials)
    return SandboxHandle(state, host, resolve_ports(port, ports)).start()
