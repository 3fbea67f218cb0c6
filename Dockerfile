# c360 on the official Apache Airflow 3.3 image, plus Java for Spark and the project's pinned requirements.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
COPY --chown=airflow:root requirements.txt /opt/c360/requirements.txt
RUN pip install --no-cache-dir -r /opt/c360/requirements.txt

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root include /opt/c360/include
COPY --chown=airflow:root quality /opt/c360/quality
ENV PYTHONPATH=/opt/c360/include:/opt/c360/include/spark \
    SODA_CORE_TELEMETRY_ENABLED=false
