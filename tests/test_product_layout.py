"""The product apart from the tooling: the sandbox (a test double and the demo's data
source) is its own top-level package, never in include/, the image, the production
services of docker-compose.yml or the path of the stack's Airflow processes; the product
(psops and every DAG) imports and parses with plugins/ alone on PYTHONPATH."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

SANDBOX_DIR = REPO_ROOT / "sandbox"
PLUGINS_DIR = REPO_ROOT / "plugins"
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
PRODUCTION_SERVICES = {name: service for name, service in COMPOSE["services"].items()
                       if name != "sandbox"}


def test_include_holds_data_definitions_only():
    include = REPO_ROOT / "include"
    assert not (include / "sandbox").exists()
    assert sorted(str(path.relative_to(include)) for path in include.rglob("*.py")) == []


def test_the_sandbox_is_a_package_of_its_own():
    assert (SANDBOX_DIR / "__init__.py").is_file()
    assert (SANDBOX_DIR / "__main__.py").is_file()


def test_the_product_never_imports_the_sandbox():
    importing = [str(path.relative_to(REPO_ROOT))
                 for folder in ("dags", "plugins")
                 for path in (REPO_ROOT / folder).rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+sandbox\b", path.read_text(), re.M)]
    assert importing == []


def test_the_demo_tooling_is_not_in_the_product():
    """What only `make demo` uses (its summary) lives in bin/, not in the psops package."""
    assert sorted(str(path.relative_to(REPO_ROOT))
                  for path in (PLUGINS_DIR / "psops").rglob("*demo*.py")) == []
    assert (REPO_ROOT / "bin" / "psops_demo_summary.py").is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
            for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_has_no_sandbox():
    for instruction, arguments in dockerfile_instructions():
        if instruction in ("COPY", "ADD"):
            sources = arguments.split()[:-1]
            assert not any(source.strip("./") in ("", "sandbox") for source in sources), \
                f"{instruction} {arguments}"
        if instruction == "ENV":
            assert "PYTHONPATH" not in arguments, arguments


def volume_source(volume: str | dict) -> str:
    return volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]


def volume_target(volume: str | dict) -> str:
    return volume["target"] if isinstance(volume, dict) else volume.split(":")[1]


def repo_path(source: str) -> Path | None:
    """The repository path a bind mount's source names (None for a named volume)."""
    return (REPO_ROOT / source).resolve() if source.startswith(".") else None


@pytest.mark.parametrize("name", sorted(PRODUCTION_SERVICES))
def test_no_production_service_mounts_the_sandbox(name):
    for volume in PRODUCTION_SERVICES[name].get("volumes", []):
        source = repo_path(volume_source(volume))
        assert source not in (REPO_ROOT, SANDBOX_DIR), (name, volume)
        if source is not None:
            assert not source.is_relative_to(SANDBOX_DIR), (name, volume)


@pytest.mark.parametrize("name", sorted(
    name for name, service in PRODUCTION_SERVICES.items() if "PYTHONPATH" in
    service.get("environment", {})))
def test_production_services_have_only_plugins_on_their_path(name):
    service = PRODUCTION_SERVICES[name]
    plugins_targets = {volume_target(volume) for volume in service["volumes"]
                       if repo_path(volume_source(volume)) == PLUGINS_DIR}
    assert service["environment"]["PYTHONPATH"].split(":") == sorted(plugins_targets)


def test_the_airflow_services_have_a_pythonpath():
    """The parametrized test above has something to check."""
    assert all("PYTHONPATH" in service["environment"]
               for name, service in PRODUCTION_SERVICES.items() if name.startswith("airflow-"))


def test_the_compose_sandbox_gets_its_code_explicitly():
    sandbox = COMPOSE["services"]["sandbox"]
    assert sandbox["profiles"] == ["dev"]
    targets = [volume_target(volume) for volume in sandbox["volumes"]
               if repo_path(volume_source(volume)) == SANDBOX_DIR]
    assert [str(Path(target).parent) for target in targets] == \
        sandbox["environment"]["PYTHONPATH"].split(":")


def stack_modules():
    sys.path.insert(0, str(REPO_ROOT / "bin"))
    try:
        import psops_demo
        import psops_stack_config
    finally:
        sys.path.remove(str(REPO_ROOT / "bin"))
    return psops_stack_config, psops_demo


def test_the_stack_processes_have_only_plugins_on_their_path(monkeypatch, tmp_path):
    """Even when the caller had the repository root (and so the sandbox) on its path."""
    config, _ = stack_modules()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), str(SANDBOX_DIR)]))
    for env in (config.stack_environment(), config.python_env()):
        assert env["PYTHONPATH"].split(os.pathsep) == [str(PLUGINS_DIR)]
    assert config.stack_environment()["AIRFLOW_HOME"] == str(tmp_path)


def test_only_the_demo_sandbox_process_gets_the_repository_root(monkeypatch, tmp_path):
    _, demo = stack_modules()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert demo.sandbox_environment()["PYTHONPATH"] == str(REPO_ROOT)


def test_bin_airflow_puts_no_sandbox_on_the_path():
    """The stack's processes run through bin/airflow, which prepends its own folders."""
    exports = re.findall(r'^export PYTHONPATH="([^"]*)"$',
                         (REPO_ROOT / "bin" / "airflow").read_text(), re.M)
    assert len(exports) == 1
    folders = exports[0].split("${", 1)[0].rstrip(":").split(":")
    assert "$root/plugins" in folders
    assert not [folder for folder in folders if folder in ("$root", "$root/")
                or "sandbox" in folder]


PRODUCT_ONLY = """
import importlib.util, json, sys
import psops
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "dags": len(bag.dags),
    "import_errors": {path: str(error)[-500:] for path, error in bag.import_errors.items()},
    "sandbox_findable": importlib.util.find_spec("sandbox") is not None,
    "sandbox_imported": any(name.split(".")[0] == "sandbox" for name in sys.modules),
}))
"""


def test_the_product_parses_with_plugins_alone_and_no_sandbox(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AIRFLOW") and key != "PYTHONPATH"}
    env.update({"PYTHONPATH": str(PLUGINS_DIR), "AIRFLOW_HOME": str(tmp_path),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR)})
    result = subprocess.run([sys.executable, "-c", PRODUCT_ONLY, str(REPO_ROOT / "dags")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["import_errors"] == {}
    assert parsed["dags"] >= len(list((REPO_ROOT / "dags").glob("psops_*.py")))
    assert not parsed["sandbox_findable"]
    assert not parsed["sandbox_imported"]


def test_import_sandbox_fails_on_the_production_path(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PLUGINS_DIR)}
    result = subprocess.run([sys.executable, "-c", "import psops; import sandbox"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "No module named 'sandbox'" in result.stderr, result.stderr[-2000:]
