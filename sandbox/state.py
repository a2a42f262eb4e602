"""Shared state of one sandbox: dataset, clock, credentials, faults and the write log."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.clock import SandboxClock
from sandbox.dataset import DEFAULT_TODAY, Dataset, build_dataset
from sandbox.faults import FaultConfig, FaultInjector


@dataclass
class Credentials:
    crm_token: str = "pat-na1-sandbox-crm-token"
    psa_account_id: str = "1234567"
    psa_token: str = "psa-sandbox-token"
    erp_client_id: str = "sandbox-erp-client"
    erp_client_secret: str = "sandbox-erp-secret"
    hris_api_key: str = "sandbox-hris-key"
    hris_company: str = "psopsdemo"
    webhook_path: str = "/services/T0SANDBOX/B0SANDBOX/sandboxwebhooksecret"


@dataclass
class DatasetParams:
    seed: int = 42
    today: date = DEFAULT_TODAY
    scale: float = 1.0
    time_entries: int | None = None
    crm_deals: int | None = None
    # An explicit dataset served instead of the generated firm: a Dataset (served as a
    # fresh copy after every rebuild) or a function of 'today' returning one.
    dataset: Dataset | Callable[[date], Dataset] | None = None

    def build(self) -> Dataset:
        if self.dataset is None:
            return build_dataset(self.seed, self.today, self.scale, self.time_entries,
                                 self.crm_deals)
        if callable(self.dataset):
            return self.dataset(self.today)
        return copy.deepcopy(self.dataset)


@dataclass
class ErpToken:
    client_id: str
    expires_at: float  # time.monotonic()


@dataclass
class SandboxState:
    params: DatasetParams
    faults: FaultInjector
    credentials: Credentials = field(default_factory=Credentials)
    data: Dataset | None = None
    clock: SandboxClock | None = None
    urls: dict[str, str] = field(default_factory=dict)
    erp_tokens: dict[str, ErpToken] = field(default_factory=dict)
    token_count: int = 0
    writes: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def create(cls, params: DatasetParams, faults: FaultConfig | None = None,
               credentials: Credentials | None = None) -> SandboxState:
        state = cls(params, FaultInjector(faults or FaultConfig(seed=params.seed)),
                    credentials or Credentials())
        state.rebuild()
        return state

    def rebuild(self) -> None:
        """(Re)generate the dataset from the parameters; forget writes and tokens."""
        p = self.params
        with self.lock:
            self.data = p.build()
            self.clock = SandboxClock(self.data.max_time_s() + 1)
            self.writes.clear()
            self.erp_tokens.clear()

    def log_write(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["seq"] = len(self.writes) + 1
            entry["time"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
            self.writes.append(entry)

    def issue_erp_token(self, client_id: str) -> tuple[str, int]:
        with self.lock:
            self.token_count += 1
            lifetime = int(self.faults.config.token_lifetime)
            token = f"erp-at-{self.params.seed}-{self.token_count:06d}"
            self.erp_tokens[token] = ErpToken(client_id, time.monotonic() + lifetime)
            return token, lifetime

    def erp_token_valid(self, token: str) -> bool:
        issued = self.erp_tokens.get(token)
        return issued is not None and issued.expires_at > time.monotonic()
