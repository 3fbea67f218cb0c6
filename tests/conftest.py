"""Test tiers: DAG integrity/policy, unit, integration (real PostgreSQL, Spark, Airflow metadata DB).

The environment is set before anything imports Airflow: a fresh state folder per test session (its own
embedded PostgreSQL, lake, Airflow home and lineage file), so tests never touch `make demo`'s state.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import create_published_tables, free_port, load_sources

_STATE = Path(tempfile.mkdtemp(prefix="c360-test-"))
os.environ["C360_STATE_DIR"] = str(_STATE)
os.environ.pop("C360_LAKE_URI", None)


# the session's own Spark Connect server (started on first use), never a `make up` one on 15002
os.environ["C360_SPARK_CONNECT_PORT"] = str(free_port())
os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)

from c360 import settings  # noqa: E402

settings.apply_runtime_env()


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
    from c360 import pg, services

    services.setup()
    yield state_dir
    _dispose_airflow_pool()
    pg.stop_embedded()


@pytest.fixture(scope="module")
def fresh_warehouse(platform):
    """An empty warehouse for the module (what `make demo` starts from: no published table, batch, quality
    result or publish log), so its first run of a dataset bootstraps with a full load. Modules share the
    session's server and each one that needs a known warehouse asks for this: none relies on another's leftovers."""
    from c360 import runs

    runs.reset_warehouse()


@pytest.fixture(scope="module")
def scale(request):
    """The generator scale of the module's sources: its ``SCALE`` (a tier's conftest may set one for all)."""
    return request.module.SCALE


@pytest.fixture(scope="module")
def sources(request, scale, fresh_warehouse):
    """Generated data of ``scale`` in the source systems and the landing zone, on a fresh warehouse. A module
    that sets ``PUBLISHED_TABLES_EMPTY = True`` gets every active dataset's published table created empty, so
    that every run is an order-independent incremental upsert (a run on a missing table bootstraps with a full
    load: test_customer_pipeline covers that)."""
    data = load_sources(scale)
    if getattr(request.module, "PUBLISHED_TABLES_EMPTY", False):
        from c360.registry import load_registry

        create_published_tables(load_registry().active())
    return data


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
