# The psops image for docker-compose.yml: the official Airflow image plus the
# project's pinned requirements (the same file `make` installs).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
