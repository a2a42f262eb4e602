"""Fault configuration, deterministic fault decisions, natural rate limits and stats."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

SYSTEMS = ("crm", "psa", "erp", "hris", "webhook")
DEFAULT_LIMITS: dict[str, list[float] | None] = {
    "crm": [5, 1],  # the search API's SECONDLY policy, per token
    "psa": [100, 15],  # per token
    "erp": None,  # bursts: e.g. [10, 1]; concurrency is erp_max_in_flight
    "hris": None,
    "webhook": [1, 1],  # per webhook path
}


@dataclass
class FaultConfig:
    """Every knob; all rates are probabilities per request (or per record for anomalies)."""

    seed: int = 0
    systems: list[str] | None = None  # random faults only for these (None = all)
    error_rate: float = 0.0  # 5xx answers
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503, 504])
    throttle_rate: float = 0.0  # forced 429 (HRIS: hris_throttle_status) in each system's style
    retry_after: int = 1
    hris_throttle_status: int = 503
    latency_ms: int = 0
    lost_response_rate: float = 0.0  # a write is applied, then its answer is lost
    lost_response_mode: str = "504"  # "504" or "drop" (connection closed mid-answer)
    anomaly_rate: float = 0.0  # PSA time entries: bad hours, unknown project/e-mail, ...
    token_lifetime: int = 3600  # ERP access token lifetime in seconds
    # A write's answer is held this long after the write was applied and logged (the
    # soak kills a writer in that window: written at the source, not yet confirmed).
    answer_latency_ms: int = 0
    natural_limits: bool = False
    limits: dict[str, list[float] | None] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    erp_max_in_flight: int = 2
    script: dict[str, list[int]] = field(default_factory=dict)  # next answers per system

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, base: FaultConfig | None = None):
        current = dataclasses.asdict(base or cls())
        for key, value in (data or {}).items():
            if key not in current:
                raise ValueError(f"unknown fault setting: {key}")
            if key == "limits" and isinstance(value, dict):
                value = {**current["limits"], **value}
            current[key] = value
        return cls(**current)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def applies(self, system: str) -> bool:
        return self.systems is None or system in self.systems


@dataclass
class Verdict:
    """What the injector decided for one request before the app sees it."""

    status: int | None = None  # answer this instead of calling the app
    kind: str = ""  # throttle, natural_limit, error, scripted
    retry_after: int | None = None
    latency_s: float = 0.0
    lose_response: bool = False


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.set_config(config)
        self.reset_stats()

    def set_config(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rngs = {s: random.Random(f"{config.seed}:{s}") for s in SYSTEMS}
            self._windows: dict[tuple, deque] = {}
            self._in_flight: Counter = Counter()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = {s: {"requests": 0, "responses": Counter(), "faults": Counter()}
                           for s in SYSTEMS}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {s: {"requests": v["requests"], "responses": dict(v["responses"]),
                        "faults": dict(v["faults"])} for s, v in self._stats.items()}

    def count_fault(self, system: str, kind: str, n: int = 1) -> None:
        with self._lock:
            self._stats[system]["faults"][kind] += n

    def count_response(self, system: str, status: int) -> None:
        with self._lock:
            self._stats[system]["responses"][str(status)] += 1

    def decide(self, system: str, limit_key: str, is_write: bool) -> Verdict:
        with self._lock:
            self._stats[system]["requests"] += 1
            verdict = self._decide(system, limit_key, is_write)
            if verdict.status is not None:
                self._stats[system]["faults"][verdict.kind] += 1
            if verdict.lose_response:
                self._stats[system]["faults"]["lost_response"] += 1
            if verdict.latency_s:
                self._stats[system]["faults"]["latency"] += 1
            return verdict

    def _decide(self, system: str, limit_key: str, is_write: bool) -> Verdict:
        cfg, rng = self.config, self._rngs[system]
        verdict = Verdict(latency_s=cfg.latency_ms / 1000 if cfg.applies(system) else 0.0)
        queue = cfg.script.get(system)
        if queue:
            verdict.status, verdict.kind = int(queue.pop(0)), "scripted"
            verdict.retry_after = cfg.retry_after
            return verdict
        if cfg.natural_limits:
            wait = self._window_wait(system, limit_key)
            if wait is not None:
                verdict.status, verdict.kind, verdict.retry_after = 429, "natural_limit", wait
                return verdict
        if not cfg.applies(system):
            return verdict
        if cfg.throttle_rate and rng.random() < cfg.throttle_rate:
            verdict.status = cfg.hris_throttle_status if system == "hris" else 429
            verdict.kind, verdict.retry_after = "throttle", cfg.retry_after
        elif cfg.error_rate and rng.random() < cfg.error_rate:
            verdict.status, verdict.kind = rng.choice(cfg.error_statuses), "error"
        elif is_write and cfg.lost_response_rate and rng.random() < cfg.lost_response_rate:
            verdict.lose_response = True
        return verdict

    def _window_wait(self, system: str, key: str) -> int | None:
        """Seconds to wait if the sliding window is full, else None (and count the call)."""
        limit = self.config.limits.get(system)
        if not limit:
            return None
        count, seconds = int(limit[0]), float(limit[1])
        now = time.monotonic()
        window = self._windows.setdefault((system, key), deque())
        while window and window[0] <= now - seconds:
            window.popleft()
        if len(window) >= count:
            return max(1, int(window[0] + seconds - now + 0.999))
        window.append(now)
        return None

    def enter(self, system: str, key: str) -> bool:
        """ERP concurrency: False (429) when the client already has the maximum in flight."""
        with self._lock:
            if (system == "erp" and self.config.natural_limits
                    and self._in_flight[key] >= self.config.erp_max_in_flight):
                self._stats[system]["faults"]["natural_limit"] += 1
                return False
            self._in_flight[key] += 1
            return True

    def leave(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1

    def anomaly_draw(self, record_id: int) -> int | None:
        """A per-record number (>= 0) when this record should be corrupted, else None.

        A fixed integer hash of (seed, id): every read of a record agrees.
        """
        rate = self.config.anomaly_rate
        if not rate:
            return None
        h = (record_id * 0x9E3779B1 + (self.config.seed + 1) * 0x85EBCA77) & 0xFFFFFFFF
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
        h ^= h >> 16
        return h >> 12 if (h & 0xFFF) < rate * 4096 else None
