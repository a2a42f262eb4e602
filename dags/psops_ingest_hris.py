"""psops_ingest_hris: the HRIS's streams into raw (an Airflow DAG built from
include/connectors/hris.yaml by psops.connectors.ingest_dag)."""

from psops.connectors.ingest_dag import build_ingest_dag

dag = build_ingest_dag("hris")
