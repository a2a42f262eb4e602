"""psops_transform: raw -> staging -> quality gates -> curated -> marts.

Entry points (see runner.py): stage_records, run_quality_gates, publish,
run_transform. Nothing here imports Airflow, Great Expectations or pandas at
module level.
"""
