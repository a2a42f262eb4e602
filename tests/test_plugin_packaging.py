"""Airflow's plugin loader sees only the psops_*_plugin.py entry points, never the psops package.

The loader imports every .py under plugins/ as a top-level module named after the
file, so without plugins/.airflowignore psops/ui/app.py would be imported a second
time as `app`, psops/transform/steps.py as `steps`, and so on. The package itself
is imported as `psops` through PYTHONPATH. This loads plugins the way an Airflow
process does, in a fresh interpreter, and inspects sys.modules afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGINS = REPO_ROOT / "plugins"
PACKAGE_DIR = PLUGINS / "psops"
BARE_NAMES = {"app", "tasks", "engine", "warehouse", "runner", "queries", "spec", "rules"}

LOAD_PLUGINS = """
import json, sys
from airflow import plugins_manager

plugins_manager.ensure_plugins_loaded()
plugins, import_errors = plugins_manager._get_plugins()
modules = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
# What the plugin's FinanceApp does on the api-server's first /psops request.
import psops.ui.app
print(json.dumps({
    "psops_ui_app": psops.ui.app.__file__,
    "plugins": {plugin.name: str(plugin.source) for plugin in plugins},
    "import_errors": import_errors,
    "modules": {name: path for name, path in modules.items() if path},
}))
"""


def load_plugins(tmp_path: Path, ignore_file_syntax: str) -> dict:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("AIRFLOW") and key != "PYTHONPATH"
    }
    env.update({
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": ignore_file_syntax,
        "PYTHONPATH": str(PLUGINS),  # what a production process has (docker-compose.yml)
    })
    result = subprocess.run([sys.executable, "-c", LOAD_PLUGINS], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# glob is Airflow 3's default [core] dag_ignore_file_syntax; the file serves regexp too.
@pytest.fixture(scope="module", params=["glob", "regexp"])
def loaded(request, tmp_path_factory):
    return load_plugins(tmp_path_factory.mktemp("airflow_home"), request.param)


def test_the_finance_plugin_is_registered(loaded):
    assert "psops_finance" in loaded["plugins"], loaded["plugins"]
    assert "psops_ui_plugin.py" in loaded["plugins"]["psops_finance"]
    assert loaded["import_errors"] == {}


def test_package_modules_are_imported_only_as_psops(loaded):
    package_dir = str(PACKAGE_DIR.resolve()) + os.sep
    stray = {
        name: path for name, path in loaded["modules"].items()
        if str(Path(path).resolve()).startswith(package_dir)
        and name != "psops" and not name.startswith("psops.")
    }
    assert stray == {}, f"the plugin loader imported psops modules under bare names: {stray}"


def test_no_bare_module_names_from_the_package(loaded):
    assert sorted(BARE_NAMES & set(loaded["modules"])) == []


def test_the_package_still_imports_as_psops(loaded):
    """The plugin's lazy `from psops.ui.app import app` finds the package on PYTHONPATH."""
    assert Path(loaded["psops_ui_app"]).resolve() == (PACKAGE_DIR / "ui" / "app.py").resolve()
