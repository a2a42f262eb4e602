"""docker-compose.yml is a valid compose file with the production-like services."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
EXPECTED_SERVICES = {
    "postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-init", "sandbox",
}
MOUNTED = {"dags", "plugins", "include", "expectations"}


@pytest.fixture(scope="module")
def resolved_compose():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run does)")
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "config"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_validates_and_has_the_stack(resolved_compose):
    assert set(resolved_compose["services"]) == EXPECTED_SERVICES


def test_airflow_services_mount_the_project(resolved_compose):
    for name, service in resolved_compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        targets = {Path(v["target"] if isinstance(v, dict) else v.split(":")[1]).name
                   for v in service["volumes"]}
        assert MOUNTED <= targets, (name, targets)
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_a_broken_compose_file_is_rejected(tmp_path):
    """The validator really checks: an unknown key fails."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    restart: always\n",
                                                       "    restartt: always\n", 1))
    result = subprocess.run(["docker-compose", "-f", str(broken), "config"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert result.returncode != 0
