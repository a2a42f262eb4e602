"""The soak: cycles of source changes -> ingest -> transform -> write-back under faults and
kills, with the pipeline's invariants checked against the sandbox's own truth after each.

One sandbox (own process, free ports) and one migrated scratch warehouse for the whole
run. Each cycle: the sandbox changes (new, updated, deleted and a few bad records), a
seeded mix of faults is switched on, and every task of the four ingest DAGs, the
transform and the write-back (held corrections approved through the approval steps)
runs as Airflow runs it: each try in a child process of its own, a failed try retried
up to PSOPS_RETRIES times (faults off for the last try, so a cycle converges). In the
kill cycles one child is SIGKILLed mid-COPY or between a write reaching the source and
its confirmation, and the task is tried again; a kill that misses (the child finished
first) is tried again in the cycle's next eligible task or the next cycle, and fewer kills
done than --kills is a violation. Prints a table; exit 1 on a violation.

    .venv/bin/python benchmarks/soak.py [--cycles 50] [--seed 7] [--kills N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, date, datetime

import bench_env
import requests
from soak_checks import check_invariants

from psops import catalogue
from psops.connectors.ingest_task import run_stream
from psops.db import warehouse_connection
from psops.settings import RETRIES
from psops.transform import steps as transform_steps
from psops.writeback import steps as writeback_steps
from psops.writeback import tasks as writeback_tasks
from psops.writeback.decisions import APPROVE

AS_OF = date(2026, 3, 31)  # the sandbox's today
FORK = multiprocessing.get_context("fork")
FAULT_KINDS = ("throttle", "error", "lost_response", "dropped_connection", "short_token",
               "latency")
KILL_POINTS = ("mid_copy", "mid_write")
TRY_TIMEOUT_S = 600


# -- the tasks, as the DAGs' adapters call the steps ----------------------------------

def _writes(result: dict) -> dict:
    return writeback_tasks.fail_if_writes_failed(result)


TASKS = {
    "ingest": lambda system, stream, run_id: run_stream(
        system, stream, dag_id=catalogue.ingest_dag_id(system), dag_run_id=run_id, as_of=AS_OF),
    "stage": lambda run_id: {"run_id": transform_steps.stage(AS_OF, run_id).run_id},
    "check_quality": lambda transform_run_id: transform_steps.gate_summary(
        transform_steps.check_quality(AS_OF, transform_run_id, with_gx=False)),
    "publish": lambda transform_run_id: str(transform_steps.publish(AS_OF, transform_run_id)),
    "summary": lambda transform_run_id: transform_steps.summary(transform_run_id),
    "plan": lambda run_id: writeback_steps.plan(AS_OF, run_id),
    "set_up_projects": lambda since: _writes(
        writeback_steps.set_up_projects(earlier_tries_since=since)),
    "apply_corrections": lambda since: _writes(
        writeback_steps.apply_corrections(earlier_tries_since=since)),
    "digest": lambda run_id, setup, corrections: writeback_tasks.fail_if_digest_failed(
        writeback_steps.send_digest(AS_OF, run_id, setup, corrections)),
    "describe_batch": lambda batch_id: writeback_steps.describe_batch(batch_id),
    "decide_batch": lambda described, run_id, since: _writes(writeback_steps.decide_batch(
        described, {"chosen_options": [APPROVE], "responded_by_user": "soak-finance"},
        run_id, earlier_tries_since=since)),
}


def _child(task: str, kwargs: dict, result_path: str, log_path: str) -> None:
    """One try of a task: its own process (killable), output to the soak's log."""
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        result = TASKS[task](**kwargs)
        outcome = {"ok": True, "result": result}
    except BaseException as exc:  # noqa: BLE001 - a failed try, whatever failed it
        traceback.print_exc()
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    with open(result_path, "w") as out:
        json.dump(outcome, out, default=str)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- the soak -----------------------------------------------------------------------

class Soak:
    def __init__(self, args, control_url: str, scratch: str) -> None:
        self.args, self.control, self.scratch = args, control_url, scratch
        self.rng = random.Random(args.seed)
        self.log_path = os.path.join(scratch, "soak.log")
        self.tries = RETRIES.integer() + 1
        self.faults_injected: Counter = Counter()
        self.fault_cycles: Counter = Counter()
        self.kills: Counter = Counter()
        self.kills_missed = 0  # tries whose child finished before its planned kill
        self.retries = 0
        self.records_checked = 0
        self.violations: list[str] = []
        self.cycle_faults: dict = {}
        self.kill_plan: dict[int, str] = {}
        self.kills_owed: list[str] = []  # planned kill points not done yet, oldest first
        self.pending_kill: str | None = None

    # --- sandbox control ---------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.control}{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def _get(self, path: str):
        response = requests.get(f"{self.control}{path}", timeout=120)
        response.raise_for_status()
        return response.json()

    def set_faults(self, settings: dict) -> None:
        self._post("/_sandbox/faults", {"reset": True, **settings})

    def choose_faults(self, cycle: int) -> dict:
        """A seeded mix: each kind on with probability 1/2 (retry_after kept short)."""
        settings: dict = {"seed": self.args.seed * 1000 + cycle, "retry_after": 1}
        kinds = [kind for kind in FAULT_KINDS if self.rng.random() < 0.5]
        if {"lost_response", "dropped_connection"} <= set(kinds):  # one way to lose answers
            kinds.remove(self.rng.choice(["lost_response", "dropped_connection"]))
        for kind in kinds:
            self.fault_cycles[kind] += 1
            if kind == "throttle":
                settings["throttle_rate"] = self.rng.choice([0.03, 0.08])
            elif kind == "error":
                settings["error_rate"] = self.rng.choice([0.03, 0.08])
            elif kind == "lost_response":
                settings.update(lost_response_rate=0.3, lost_response_mode="504")
            elif kind == "dropped_connection":
                settings.update(lost_response_rate=0.3, lost_response_mode="drop")
            elif kind == "short_token":
                settings["token_lifetime"] = 1
            elif kind == "latency":
                settings["latency_ms"] = self.rng.choice([5, 20])
        return settings

    def count_faults(self) -> None:
        for system in self._get("/_sandbox/stats").values():
            for kind, n in system["faults"].items():
                self.faults_injected[kind] += n
            self.faults_injected["dropped_connection_answers"] += system["responses"].get("0", 0)
        requests.delete(f"{self.control}/_sandbox/stats", timeout=30)

    # --- running a task as Airflow would -----------------------------------------
    def run_task(self, cycle: int, name: str, task: str, kill_point: str | None = None,
                 **kwargs):
        """Tries until one succeeds (at most self.tries); the last without faults. The
        cycle's pending kill, when it is `kill_point`, is tried on the first try."""
        for attempt in range(1, self.tries + 1):
            last = attempt == self.tries
            if last and attempt > 1:
                self.set_faults({})
            kill = self.pending_kill if (attempt == 1 and kill_point
                                         and kill_point == self.pending_kill) else None
            ok, value = self._one_try(task, kwargs, kill)
            if last and attempt > 1:
                self.set_faults(self.cycle_faults)
            if ok:
                return value
            self.retries += 1
            print(f"  cycle {cycle}: {name} try {attempt} failed: {value}", flush=True)
        self.violations.append(f"cycle {cycle}: task {name} failed on all {self.tries} tries "
                               f"(the last without faults): {value}")
        return None

    def _one_try(self, task: str, kwargs: dict, kill: str | None):
        result_path = tempfile.mktemp(dir=self.scratch, suffix=".json")
        process = FORK.Process(target=_child, args=(task, kwargs, result_path, self.log_path))
        writes_before = len(self._get("/_sandbox/writes")) if kill == "mid_write" else 0
        process.start()
        if kill:
            if self._kill_when(process, kill, writes_before):
                self.kills[kill] += 1
                self.kills_owed.remove(kill)
                self.pending_kill = None
                return False, f"SIGKILL {kill}"
            self.kills_missed += 1  # the cycle's next eligible task tries it
        process.join(TRY_TIMEOUT_S)
        if process.is_alive():  # as execution_timeout would: the try is failed
            os.kill(process.pid, signal.SIGKILL)
            process.join()
            return False, f"no outcome after {TRY_TIMEOUT_S} s: killed"
        if not os.path.exists(result_path):
            return False, f"child exited {process.exitcode} without a result"
        with open(result_path) as handle:
            outcome = json.load(handle)
        os.unlink(result_path)
        return (True, outcome["result"]) if outcome["ok"] else (False, outcome["error"])

    def _kill_when(self, process, point: str, writes_before: int) -> bool:
        """SIGKILL the child at the kill point (a COPY into raw running; the sandbox
        logged a new write, whose answer it holds); False when the child finished first."""
        while process.is_alive():
            if point == "mid_copy" and self._copy_running():
                break
            if point == "mid_write" and len(self._get("/_sandbox/writes")) > writes_before:
                break
            time.sleep(0.01)
        else:
            return False
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        return True

    def _copy_running(self) -> bool:
        with warehouse_connection(autocommit=True, migrate=False) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'psops%' "
                "AND query ILIKE 'COPY %%raw%%' AND datname = current_database() "
                "AND pid <> pg_backend_pid()").fetchone()[0] > 0

    # --- one cycle ---------------------------------------------------------------
    def cycle(self, cycle: int) -> None:
        if cycle in self.kill_plan:
            self.kills_owed.append(self.kill_plan[cycle])
        # one kill a cycle: the oldest owed (a missed one is carried to the next cycle)
        kill = self.pending_kill = self.kills_owed[0] if self.kills_owed else None
        changed = self._post("/_sandbox/mutate", {"seed": self.args.seed * 1000 + cycle,
                                                  "new": 1, "updated": 8, "deleted": 1,
                                                  "bad": 0 if cycle == 1 else 2})
        self.cycle_faults = self.choose_faults(cycle)
        if kill == "mid_copy":  # enough changed entries for a COPY over several pages
            self._post("/_sandbox/touch", {"system": "psa", "resource": "time_entries",
                                           "count": 5000})
            self.cycle_faults["latency_ms"] = max(self.cycle_faults.get("latency_ms", 0), 150)
        if kill == "mid_write":  # the answer of a write is held: kill before it arrives
            self.cycle_faults["answer_latency_ms"] = 1500
        self.set_faults(self.cycle_faults)
        self.ingest(cycle)
        # What the ingest saw: the write-back changes the sources after it (the next
        # cycle's ingest brings those changes in).
        ingested = self._get("/_sandbox/truth")
        self.transform(cycle)
        self.writeback(cycle)
        self.set_faults({})
        self.count_faults()
        final = self._get("/_sandbox/truth")
        checked, problems = check_invariants(
            {**ingested, "per_key": final["per_key"]}, self._get("/_sandbox/writes"))
        self.records_checked += checked
        self.violations += [f"cycle {cycle}: {p}" for p in problems]
        print(f"cycle {cycle}: {sum(len(v) for v in changed.values())} source changes, "
              f"faults {sorted(k for k in self.cycle_faults if k not in ('seed', 'retry_after'))}"
              f", kill {kill or '-'}; {checked} records checked, {len(problems)} violations",
              flush=True)
        for problem in problems[:20]:
            print(f"  VIOLATION {problem}", flush=True)

    def ingest(self, cycle: int) -> None:
        armed = False  # a mid-COPY kill waits for the PSA time entries (the big COPY)
        for system in catalogue.system_names():
            run_id = f"soak__{cycle}_{system}"
            for stream in catalogue.system(system).streams:
                armed = armed or (system, stream.name) == ("psa", "time_entries")
                self.run_task(cycle, f"ingest {system}.{stream.name}", "ingest",
                              "mid_copy" if armed else None,
                              system=system, stream=stream.name, run_id=run_id)

    def transform(self, cycle: int) -> None:
        staged = self.run_task(cycle, "stage", "stage", run_id=f"soak__{cycle}_transform")
        if staged is None:
            return
        run_id = staged["run_id"]
        for task in ("check_quality", "publish", "summary"):
            if self.run_task(cycle, task, task, transform_run_id=run_id) is None:
                return

    def writeback(self, cycle: int) -> None:
        run_id = f"soak__{cycle}_writeback"
        since = datetime.now(UTC)
        plan = self.run_task(cycle, "plan", "plan", run_id=run_id)
        if plan is None:
            return
        setup = self.run_task(cycle, "set_up_projects", "set_up_projects", "mid_write",
                              since=since)
        corrections = self.run_task(cycle, "apply_corrections", "apply_corrections",
                                    "mid_write", since=since)
        self.run_task(cycle, "digest", "digest", run_id=run_id, setup=setup,
                      corrections=corrections)
        if plan.get("batch_id"):
            described = self.run_task(cycle, "describe_batch", "describe_batch",
                                      batch_id=plan["batch_id"])
            if described is not None:
                self.run_task(cycle, "decide_batch", "decide_batch", "mid_write",
                              described=described,
                              run_id=f"approve__{plan['batch_id']}", since=datetime.now(UTC))

    def plan_kills(self, cycles: list[int]) -> dict[int, str]:
        """{cycle: kill point}: --kills seeded cycles, the points taken in turn."""
        kill_cycles = sorted(self.rng.sample(cycles, min(self.args.kills, len(cycles))))
        return {c: KILL_POINTS[n % len(KILL_POINTS)] for n, c in enumerate(kill_cycles)}

    def run(self) -> None:
        cycles = list(range(1, self.args.cycles + 1))
        self.kill_plan = self.plan_kills(cycles)
        for cycle in cycles:
            self.cycle(cycle)
        done = sum(self.kills.values())
        if done < self.args.kills:
            self.violations.append(
                f"{done} kills done, {self.args.kills - done} fewer than --kills "
                f"{self.args.kills} (planned kills missed and not made up: "
                f"{', '.join(self.kills_owed) or '-'})")

    def table(self, seconds: float) -> str:
        kills = ", ".join(f"{point} {n}" for point, n in sorted(self.kills.items())) or "none"
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults_injected.items())
                           if n) or "none"
        rows = [
            ("cycles", str(self.args.cycles)),
            ("fault mixes (cycles with kind)",
             ", ".join(f"{k} {n}" for k, n in sorted(self.fault_cycles.items())) or "none"),
            ("faults injected (sandbox counts)", faults),
            ("kills", f"{sum(self.kills.values())} ({kills}); {self.kills_missed} missed "
                      f"and tried again"),
            ("failed tries retried", str(self.retries)),
            ("records checked", str(self.records_checked)),
            ("violations", str(len(self.violations))),
            ("wall time", f"{seconds:.0f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kills", type=int, default=None,
                        help="cycles with a SIGKILL (default: a quarter of the cycles, >= 1)")
    parser.add_argument("--time-entries", type=int, default=20000)
    parser.add_argument("--log-dir", default=None,
                        help="where the tasks' log goes (default: a new folder under the "
                             "temporary directory, kept and printed)")
    args = parser.parse_args(argv)
    if args.kills is None:
        args.kills = max(1, args.cycles // 4)
    started = time.perf_counter()
    scratch = args.log_dir or tempfile.mkdtemp(prefix="psops_soak_")  # kept: the tasks' logs
    with bench_env.sandbox_process("--seed", str(args.seed), "--time-entries",
                                      str(args.time_entries)) as sandbox, \
            bench_env.bench_database():
        soak = Soak(args, sandbox["psa_url"], scratch)
        print(f"task logs: {soak.log_path}", flush=True)
        soak.run()
    print(soak.table(time.perf_counter() - started))
    for violation in soak.violations:
        print(f"VIOLATION {violation}")
    return 1 if soak.violations else 0


if __name__ == "__main__":
    sys.exit(main())
