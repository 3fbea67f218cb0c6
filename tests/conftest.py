"""Test tiers: DAG integrity/policy, unit, integration (real PostgreSQL, Spark, Airflow metadata DB).

The environment is set before anything imports Airflow: a fresh state folder per test session (its own
embedded PostgreSQL, lake, Airflow home and lineage file), so tests never touch `make demo`'s state.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

_STATE = Path(tempfile.mkdtemp(prefix="c360-test-"))
os.environ["C360_STATE_DIR"] = str(_STATE)
os.environ.pop("C360_LAKE_URI", None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the session's own Spark Connect server (started on first use), never a `make up` one on 15002
os.environ["C360_SPARK_CONNECT_PORT"] = str(_free_port())
os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)

from c360 import settings  # noqa: E402

settings.apply_runtime_env()

ARTIFACTS = settings.PROJECT_DIR / "test-artifacts"


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return _STATE


@pytest.fixture(scope="session")
def dagbag():
    """One DagBag for all integrity and policy tests."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(settings.DAGS_DIR))


@pytest.fixture(scope="session")
def platform(state_dir):
    """The embedded PostgreSQL with source, warehouse and Airflow databases, Airflow migrated."""
    from c360 import cli, pg

    cli.setup()
    yield state_dir
    _dispose_airflow_pool()
    pg.stop_embedded()


def _dispose_airflow_pool() -> None:
    # Airflow closes its pooled connections at exit; once the server is gone that logs a traceback.
    import sys

    if "airflow.settings" in sys.modules:
        sys.modules["airflow.settings"].dispose_orm()


@pytest.fixture(scope="session")
def spark():
    """A small local Spark session shared by the Spark unit tests."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("c360-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def pytest_sessionfinish(session, exitstatus):
    from c360 import pg, spark_runner

    try:
        spark_runner.stop_local_server()
        _dispose_airflow_pool()
        pg.stop_embedded()
    finally:
        shutil.rmtree(_STATE, ignore_errors=True)
