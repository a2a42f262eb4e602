"""psops_ingest_psa: the PSA's streams into raw (an Airflow DAG built from
include/connectors/psa.yaml by psops.connectors.ingest_dag)."""

from psops.connectors.ingest_dag import build_ingest_dag

dag = build_ingest_dag("psa")
