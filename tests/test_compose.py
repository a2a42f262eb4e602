"""docker-compose.yml is a valid compose file with the production-like services."""

import json
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
DATA_DOCS_VOLUME = "data-docs"
DATA_DOCS_DIR = "/opt/airflow/data_docs"


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


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume, from either docker-compose's short or long form."""
    pairs = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            pairs.append((volume.get("source", ""), volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            pairs.append((source, target))
    return pairs


def airflow_services(resolved_compose) -> dict:
    services = {name: service for name, service in resolved_compose["services"].items()
                if name.startswith("airflow-")}
    assert len(services) == 6
    return services


def test_the_sandbox_is_only_in_the_dev_profile(resolved_compose):
    services = resolved_compose["services"]
    assert services["sandbox"].get("profiles") == ["dev"]
    production = {name: service for name, service in services.items() if name != "sandbox"}
    for name, service in production.items():
        assert not service.get("profiles"), (name, service.get("profiles"))
        assert "sandbox" not in service.get("depends_on", {}), name


def test_the_sandbox_mounts_only_its_own_code(resolved_compose):
    sources = {Path(source).relative_to(REPO_ROOT).as_posix()
               for source, _ in mounts(resolved_compose["services"]["sandbox"])}
    assert sources == {"sandbox"}


def test_the_connections_point_at_the_compose_sandbox():
    """The AIRFLOW_CONN_* values carry the credentials the sandbox accepts, at its
    service name and default ports."""
    from sandbox.server import connection_env, resolve_ports
    from sandbox.state import Credentials

    common = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]
    expected = connection_env(Credentials(), "sandbox", resolve_ports())
    assert {name: json.loads(common[name]) for name in expected} == {
        name: json.loads(value) for name, value in expected.items()}


def test_airflow_services_share_the_data_docs_volume(resolved_compose):
    """The worker writes the Data Docs, the api-server serves them: the same volume."""
    assert DATA_DOCS_VOLUME in resolved_compose["volumes"]
    for name, service in airflow_services(resolved_compose).items():
        assert (DATA_DOCS_VOLUME, DATA_DOCS_DIR) in mounts(service), name
        assert service["environment"]["PSOPS_DATA_DOCS_DIR"] == DATA_DOCS_DIR, name


def test_init_hands_the_data_docs_volume_to_the_airflow_user(resolved_compose):
    """A fresh named volume is root's; the services run as 50000."""
    init = resolved_compose["services"]["airflow-init"]
    script = " ".join(init["command"])
    assert f"chown -R 50000:0 {DATA_DOCS_DIR}" in script
    assert all(service["user"] == "50000:0"
               for name, service in airflow_services(resolved_compose).items()
               if name != "airflow-init")


def test_init_creates_the_pools_from_their_one_definition(resolved_compose):
    """The scheduler never schedules a task whose pool does not exist."""
    script = " ".join(resolved_compose["services"]["airflow-init"]["command"])
    assert 'pools="$$(python -m psops.catalogue pools)" &&' in script  # $$: a literal $
    assert 'airflow pools set "$$pool" "$$slots"' in script


# The init's commands replaced by shell functions that log their arguments; the
# catalogue prints CATALOGUE_OUTPUT and exits with CATALOGUE_STATUS.
INIT_STUBS = """
mkdir() { :; }
chown() { :; }
airflow() { echo "airflow $*" >>"$CALLS"; }
python() {
    echo "python $*" >>"$CALLS"
    [ "$*" = "-m psops.catalogue pools" ] || return 0
    printf '%s' "$CATALOGUE_OUTPUT"
    return "$CATALOGUE_STATUS"
}
"""


def run_init(resolved_compose, tmp_path, catalogue_output: str, catalogue_status: int):
    """The airflow-init script as bash runs it (compose's `$$` is a literal `$`)."""
    bash_flag, script = resolved_compose["services"]["airflow-init"]["command"]
    calls = tmp_path / "calls"
    calls.touch()
    result = subprocess.run(
        ["bash", bash_flag, INIT_STUBS + script.replace("$$", "$")],
        env={"PATH": "/usr/bin:/bin", "CALLS": str(calls), "CATALOGUE_OUTPUT": catalogue_output,
             "CATALOGUE_STATUS": str(catalogue_status)},
        capture_output=True, text=True, timeout=60)
    return result.returncode, calls.read_text().splitlines()


def test_init_sets_each_pool_the_catalogue_names(resolved_compose, tmp_path):
    status, calls = run_init(resolved_compose, tmp_path, "erp_api 2\nother_api 5\n", 0)
    assert status == 0
    assert [call for call in calls if call.startswith("airflow pools")] == [
        "airflow pools set erp_api 2 at most 2 requests in flight to erp_api, across all DAGs",
        "airflow pools set other_api 5 at most 5 requests in flight to other_api, across all DAGs",
    ]


def test_init_fails_when_the_catalogue_fails(resolved_compose, tmp_path):
    """A broken catalogue must not leave an init that "succeeded" without its pools."""
    status, calls = run_init(resolved_compose, tmp_path, "", 1)
    assert status != 0
    assert "python -m psops.catalogue pools" in calls
    assert not [call for call in calls if call.startswith("airflow pools")]


def test_init_succeeds_with_no_pools(resolved_compose, tmp_path):
    status, calls = run_init(resolved_compose, tmp_path, "", 0)
    assert status == 0
    assert not [call for call in calls if call.startswith("airflow pools")]


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
