# c360 on the official Apache Airflow 3.3 image: Java for Spark, the project's runtime requirements only (the
# test tools are requirements-dev.txt, for development machines and CI), the S3 connector jars Spark needs for
# s3a://, and the project laid out as in the repository under /opt/c360. It runs as the image's airflow user.
FROM apache/airflow:3.3.2-python3.11

USER root
# Debian's default JRE (17 on bookworm, 21 on trixie; Spark 4 runs on both). The package ships
# /usr/lib/jvm/default-java, a link to the JVM of the image's own architecture, so JAVA_HOME holds on amd64
# and arm64 alike (a java-17-openjdk-amd64 path does not exist on arm64).
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/default-java

# The mount points of docker-compose.yaml's named volumes (logs, config, lake, state). A new named volume is
# filled from the image at its mount point, ownership included, so they are created here owned by airflow
# (group 0, as in the official image); a path the image lacks would come up root-owned and unwritable for
# UID 50000. airflow-init chowns them again, for volumes made earlier or another AIRFLOW_UID.
RUN mkdir -p /opt/airflow/logs /opt/airflow/config /opt/c360/lake /opt/c360/state \
 && chown -R airflow:0 /opt/airflow/logs /opt/airflow/config /opt/c360

USER airflow
COPY --chown=airflow:0 requirements.txt /opt/c360/requirements.txt
# apache-airflow is pinned in requirements.txt to this image's release, so pip keeps the image's Airflow.
RUN pip install --no-cache-dir -r /opt/c360/requirements.txt

# SPARK_HOME is pyspark's installation (its bin/ and jars/), at a fixed path for the compose file's Spark
# master and worker commands; c360.spark_runner takes SPARK_HOME too.
RUN ln -s "$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" /opt/c360/spark
ENV SPARK_HOME=/opt/c360/spark

# s3a:// (a lake on S3) needs Hadoop's S3A connector, which pyspark does not ship: hadoop-aws of exactly the
# Hadoop release in pyspark's jars (hadoop-client-api-3.5.0 for pyspark 4.2.0; the build stops if they
# differ), the AWS SDK v2 bundle and the analytics accelerator that hadoop-aws 3.5.0 depends on. Fetched from
# Maven Central into $SPARK_HOME/jars (the classpath of spark-submit, the Connect server and the standalone
# master and worker), each checked against its pinned SHA-1, the checksum Maven Central publishes beside
# every jar (<jar>.sha1).
ARG MAVEN_CENTRAL=https://repo1.maven.org/maven2
ARG HADOOP_AWS_VERSION=3.5.0
ARG HADOOP_AWS_SHA1=9e594525d264c0db653c7f68da98b245f7d61ea5
ARG AWS_SDK_BUNDLE_VERSION=2.35.4
ARG AWS_SDK_BUNDLE_SHA1=7252265e3970b214708e68a8b74a8fa8c875af1e
ARG ANALYTICS_ACCELERATOR_VERSION=1.3.1
ARG ANALYTICS_ACCELERATOR_SHA1=6c9bd0f6c440c9a78e82d272f5f0252d942419f6
RUN set -eu; \
    jars="$SPARK_HOME/jars"; \
    if [ ! -f "$jars/hadoop-client-api-${HADOOP_AWS_VERSION}.jar" ]; then \
        echo "hadoop-aws ${HADOOP_AWS_VERSION} does not match pyspark's Hadoop:" $(ls "$jars" | grep hadoop-client-api); \
        exit 1; \
    fi; \
    fetch() { \
        curl -fsSL --retry 3 -o "$jars/${1##*/}" "${MAVEN_CENTRAL}/$1"; \
        echo "$2  $jars/${1##*/}" | sha1sum -c -; \
    }; \
    fetch "org/apache/hadoop/hadoop-aws/${HADOOP_AWS_VERSION}/hadoop-aws-${HADOOP_AWS_VERSION}.jar" "${HADOOP_AWS_SHA1}"; \
    fetch "software/amazon/awssdk/bundle/${AWS_SDK_BUNDLE_VERSION}/bundle-${AWS_SDK_BUNDLE_VERSION}.jar" "${AWS_SDK_BUNDLE_SHA1}"; \
    fetch "software/amazon/s3/analyticsaccelerator/analyticsaccelerator-s3/${ANALYTICS_ACCELERATOR_VERSION}/analyticsaccelerator-s3-${ANALYTICS_ACCELERATOR_VERSION}.jar" "${ANALYTICS_ACCELERATOR_SHA1}"

# The repository's layout under /opt/c360: c360.settings finds the DAGs, contracts and README relative to it.
COPY --chown=airflow:0 dags /opt/c360/dags
COPY --chown=airflow:0 plugins /opt/c360/plugins
COPY --chown=airflow:0 include /opt/c360/include
COPY --chown=airflow:0 quality /opt/c360/quality
COPY --chown=airflow:0 README.md /opt/c360/README.md
ENV PYTHONPATH=/opt/c360/include:/opt/c360/include/spark \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/c360/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/c360/plugins \
    SODA_CORE_TELEMETRY_ENABLED=false
