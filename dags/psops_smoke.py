"""psops_smoke: proves Airflow, the warehouse connection and the migrations work."""

from airflow.sdk import dag, task

from psops.dag_defaults import dag_arguments

DOC = """
### psops_smoke: is the platform alive?

Writes one row to `ops.smoke_checks` in the warehouse and reads it back.
Run it after installing or upgrading (`bin/airflow dags test psops_smoke`);
`make demo` runs it first.

**If it fails**: the task log names the warehouse it tried (never the
password). Check `AIRFLOW_CONN_WAREHOUSE`, or unset it to use the embedded
PostgreSQL (`.venv/bin/python bin/psops_warehouse.py status`).
"""


@dag(
    dag_id="psops_smoke",
    schedule=None,
    **dag_arguments(),
    tags=["psops", "ops"],
    doc_md=DOC,
)
def psops_smoke():
    @task
    def write_and_read_back(**context) -> str:
        from psops.smoke import write_and_read_back

        return write_and_read_back(context["run_id"])

    write_and_read_back()


psops_smoke()
