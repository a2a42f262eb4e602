"""psops' finance pages in the Airflow UI (a FastAPI app mounted by the api-server)."""
