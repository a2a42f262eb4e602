"""psops_ingest_erp: the ERP's streams into raw (an Airflow DAG built from
include/connectors/erp.yaml by psops.connectors.ingest_dag)."""

from psops.connectors.ingest_dag import build_ingest_dag

dag = build_ingest_dag("erp")
