"""docker-compose.yaml, Dockerfile and .env.example agree with each other and with the code.

No Docker engine runs here, so what can be checked without one is: the YAML parses, the services and their
dependencies exist, published ports do not clash, every connection the code needs is configured, every
variable compose needs is in .env.example, the lineage transport and Spark connection point at services
that listen there, and the databases and users the connections use are created.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import pytest
import yaml

from c360 import settings

ROOT = settings.PROJECT_DIR
SERVICES = {"postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "spark-master", "spark-worker", "marquez-db", "marquez-api", "marquez-web"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_services_and_dependencies(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}) or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_published_host_ports_are_unique(compose):
    ports = [p.split(":")[0] for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert len(ports) == len(set(ports)), ports


def test_every_connection_the_code_needs_is_configured(compose, env_example):
    env = compose["services"]["airflow-scheduler"]["environment"]
    for conn_id in settings.CONNECTION_IDS:
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert var in env, f"{var} missing from the Airflow services"
        if var != "AIRFLOW_CONN_SPARK_DEFAULT":
            assert var in env_example, f"{var} missing from .env.example"
            json.loads(env_example[var])  # the JSON form the code reads


def test_every_required_variable_is_in_env_example(env_example):
    text = (ROOT / "docker-compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}", text))  # $${X} is a literal
    defaulted = set(re.findall(r"\$\{([A-Z0-9_]+):-[^}]*\}", text))
    assert used - defaulted <= set(env_example), sorted(used - defaulted - set(env_example))


def test_lineage_goes_to_the_marquez_api_service(compose):
    services = compose["services"]
    transport = json.loads(services["airflow-scheduler"]["environment"]["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    url = urlparse(transport["url"])
    assert transport["type"] == "http" and url.hostname == "marquez-api"
    assert str(url.port) == str(services["marquez-api"]["environment"]["MARQUEZ_PORT"])


def test_spark_connection_points_at_the_master(compose):
    services = compose["services"]
    conn = json.loads(services["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn["host"] == "spark://spark-master"
    master_cmd = " ".join(services["spark-master"]["command"])
    assert f"--port {conn['port']}" in master_cmd
    assert f"spark://spark-master:{conn['port']}" in " ".join(services["spark-worker"]["command"])


def test_databases_and_users_of_the_connections_exist(compose, env_example):
    init = (ROOT / "include/sql/compose/init-databases.sql").read_text()
    created = set(re.findall(r"create database (\w+)", init, re.I))
    pg_env = compose["services"]["postgres"]["environment"]
    default_db = re.search(r":-(\w+)\}", pg_env["POSTGRES_DB"]).group(1)
    default_user = re.search(r":-(\w+)\}", pg_env["POSTGRES_USER"]).group(1)
    users = {env_example.get("POSTGRES_USER", default_user)} | set(re.findall(r"create (?:user|role) (\w+)", init, re.I))
    databases = created | {env_example.get("POSTGRES_DB", default_db)}
    for var in ("AIRFLOW_CONN_C360_WAREHOUSE", "AIRFLOW_CONN_C360_REDSHIFT_SOURCE", "AIRFLOW_CONN_C360_OLTP_SOURCE"):
        conn = json.loads(env_example[var])
        assert conn["host"] == "postgres" and conn["schema"] in databases and conn["login"] in users, var
    meta = urlparse(env_example["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert meta.hostname == "postgres" and meta.path.lstrip("/") in databases and meta.username in users


def test_image_has_java_and_the_project_on_the_python_path():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3" in dockerfile
    assert "openjdk-17" in dockerfile and "JAVA_HOME" in dockerfile
    assert "/opt/c360/include" in dockerfile and "requirements.txt" in dockerfile
