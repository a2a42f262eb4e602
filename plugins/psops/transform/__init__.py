"""psops_transform: raw -> staging -> quality gates -> curated -> marts.

The steps (steps.py) are what the DAG's tasks call; runner.run_transform calls them in
order (tests, benchmarks). Nothing here imports Airflow, Great Expectations or pandas
at module level.
"""
