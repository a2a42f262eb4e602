"""The local stack's processes: each started in a session of its own, with its pid file
and log under $AIRFLOW_HOME/stack/, and stopped as a whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from psops_stack_config import REPO_ROOT, state_dir

STOP_TIMEOUT_S = 30


def pid_file(name: str) -> Path:
    return state_dir() / "pids" / f"{name}.pid"


def log_file(name: str) -> Path:
    return state_dir() / "logs" / f"{name}.log"


def log_tail(name: str, lines: int = 15) -> str:
    try:
        return "\n".join(log_file(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ..., starttime (19)]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int, started: str) -> list[int]:
    """Live processes of the process group a component was started as. A group is ours
    while its leader is the process we started (same start time) or, once the leader
    has died, while processes of its group live on (Linux reuses no pid that is still a
    process group's id): so a stale pid file never leads to a stranger."""
    leader = _stat_fields(pgid)
    if leader is not None and leader[0] != "Z" and leader[19] != started:
        return []
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(stat.parent.name))
    return members


def _read_pid_file(name: str) -> tuple[int, str] | None:
    try:
        pgid, started = pid_file(name).read_text().split()
        return int(pgid), started
    except (OSError, ValueError):
        return None


def running_pid(name: str) -> int | None:
    """The process group of a component while any process of it lives (the leader may
    have died with its children still running); forgets a dead one."""
    recorded = _read_pid_file(name)
    if recorded is not None:
        pgid, started = recorded
        try:  # our own child that exited: reap it
            os.waitpid(pgid, os.WNOHANG)
        except ChildProcessError:
            pass
        if group_members(pgid, started):
            return pgid
    pid_file(name).unlink(missing_ok=True)
    return None


def start_process(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a process in a session of its own (so `down` stops all its children); the
    previous log is kept as <name>.log.1."""
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    log = log_file(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.replace(log.with_suffix(".log.1"))
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                   start_new_session=True)
    started = (_stat_fields(process.pid) or [""] * 20)[19]
    pid_file(name).write_text(f"{process.pid} {started}")
    return process.pid


def stop_process(name: str) -> bool:
    """TERM every process of the component's group, KILL what is left after 30 s."""
    pgid = running_pid(name)
    recorded = _read_pid_file(name)
    if pgid is None or recorded is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        for pid in group_members(*recorded):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and running_pid(name) is not None:
            time.sleep(0.3)
        if running_pid(name) is None:
            break
    pid_file(name).unlink(missing_ok=True)
    return True


def all_component_names() -> list[str]:
    names = [path.stem for path in (state_dir() / "pids").glob("*.pid")]
    return sorted(names)
