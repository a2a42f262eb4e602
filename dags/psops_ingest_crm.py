"""psops_ingest_crm: the CRM's streams into raw (an Airflow DAG built from
include/connectors/crm.yaml by psops.connectors.ingest_dag)."""

from psops.connectors.ingest_dag import build_ingest_dag

dag = build_ingest_dag("crm")
