"""Where things live and how the processes are configured.

Everything generated (Postgres data, lake, Airflow home, logs, lineage) lives under one git-ignored state
folder. Connections reach tasks only through ``AIRFLOW_CONN_*`` environment variables; for the default
local setup :func:`runtime_env` derives them from the embedded PostgreSQL, and any variable already set in
the environment wins, so another server is one ``AIRFLOW_CONN_*`` URI away.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
INCLUDE_DIR = PROJECT_DIR / "include"
SQL_DIR = INCLUDE_DIR / "sql"
SPARK_DIR = INCLUDE_DIR / "spark"
QUALITY_DIR = PROJECT_DIR / "quality"
DAGS_DIR = PROJECT_DIR / "dags"
PLUGINS_DIR = PROJECT_DIR / "plugins"

# Connection ids used by the code; each must be configured (tests check docker-compose and .env.example too).
WAREHOUSE_CONN_ID = "c360_warehouse"
REDSHIFT_CONN_ID = "c360_redshift_source"
OLTP_CONN_ID = "c360_oltp_source"
SPARK_CONN_ID = "spark_default"
CONNECTION_IDS = (WAREHOUSE_CONN_ID, REDSHIFT_CONN_ID, OLTP_CONN_ID, SPARK_CONN_ID)

# Databases on the embedded server: two source systems, the warehouse, Airflow's metadata.
DATABASES = {"redshift": REDSHIFT_CONN_ID, "oltp": OLTP_CONN_ID, "c360": WAREHOUSE_CONN_ID}
AIRFLOW_DATABASE = "airflow"

# The fixed demo interval (a day inside the generated history), so `make demo` is reproducible.
DEMO_DATE = "2026-11-20"


class SettingError(RuntimeError):
    """A required setting is missing or malformed."""


def state_dir() -> Path:
    return Path(os.environ.get("C360_STATE_DIR", PROJECT_DIR / ".state")).resolve()


def pg_data_dir() -> Path:
    return state_dir() / "pg"


def airflow_home() -> Path:
    return state_dir() / "airflow"


def lineage_file() -> Path:
    return state_dir() / "lineage" / "events.jsonl"


def lake_uri() -> str:
    """Root of the lake: ``file:///...`` by default, ``s3://bucket/prefix`` by configuration."""
    return os.environ.get("C360_LAKE_URI", (state_dir() / "lake").as_uri()).rstrip("/")


def landing_uri() -> str:
    """Where web analytics exports land (the GA export drop zone), inside the lake."""
    return f"{lake_uri()}/landing"


def spark_connect_port() -> int:
    return int(os.environ.get("C360_SPARK_CONNECT_PORT", "15002"))


def copy_streams() -> int:
    """Concurrent COPY connections of one load: PostgreSQL parses a COPY on one core."""
    raw = os.environ.get("C360_COPY_STREAMS", str(min(4, os.cpu_count() or 1)))
    if not raw.isdigit() or int(raw) < 1:
        raise SettingError(f"C360_COPY_STREAMS must be a whole number >= 1, got {raw!r}")
    return int(raw)


# Airflow's own start_date of every DAG: early enough that a run of any interval creates its tasks (a run
# before a DAG's start_date runs no task and reports success). Each dataset's real first interval is its
# registry start_date, checked by the run's first task.
DAG_START_FLOOR = "1900-01-01"


def default_start_date():
    """The platform-wide first interval (``C360_START_DATE``, ISO date, default 2026-01-01) of a dataset whose
    registry entry sets no ``start_date``."""
    from datetime import date

    raw = os.environ.get("C360_START_DATE", "2026-01-01")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingError(f"C360_START_DATE must be an ISO date (YYYY-MM-DD), got {raw!r}") from None


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SettingError(f"required setting {name} is not set (see .env.example)")
    return value


def _pg_conn_json(socket_dir: Path, database: str) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": str(socket_dir),
            "port": 5432,
            "login": "postgres",
            "password": "",
            "schema": database,
        }
    )


def runtime_env(socket_dir: Path | None = None) -> dict[str, str]:
    """Environment for every c360 process (Airflow, Spark, tests) on the local default setup.

    Values already present in ``os.environ`` are kept: they are how a deployment points at other servers.
    """
    socket_dir = socket_dir or pg_data_dir()
    home = airflow_home()
    venv_bin = str(Path(sys.executable).parent)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://postgres@/{AIRFLOW_DATABASE}?host={socket_dir}"
        ),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(state_dir() / "logs"),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "c360",
        # what each @task read and wrote (c360.lineage.attach) reaches the provider through this extractor
        "AIRFLOW__OPENLINEAGE__EXTRACTORS": "c360.lineage.TaskLineageExtractor",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(lineage_file()), "append": True}
        ),
        # a Spark Connect server on this machine (local[*], started on first use: c360.spark_runner);
        # {"conn_type": "spark", "host": "spark://...|yarn|k8s://..."} makes every transform a spark-submit
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {"conn_type": "spark_connect", "host": "127.0.0.1", "port": spark_connect_port()}
        ),
        "SODA_CORE_TELEMETRY_ENABLED": "false",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "C360_STATE_DIR": str(state_dir()),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(INCLUDE_DIR), str(SPARK_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
        # spark-submit and the airflow CLI live next to this interpreter.
        "PATH": os.pathsep.join((venv_bin, os.environ.get("PATH", ""))),
    }
    for database, conn_id in DATABASES.items():
        defaults[f"AIRFLOW_CONN_{conn_id.upper()}"] = _pg_conn_json(socket_dir, database)
    from c360.java import java_home

    jhome = java_home(state_dir())
    if jhome:
        defaults["JAVA_HOME"] = jhome
    return {k: os.environ.get(k, v) if k not in ("PATH", "PYTHONPATH") else v for k, v in defaults.items()}


def apply_runtime_env(socket_dir: Path | None = None) -> dict[str, str]:
    env = runtime_env(socket_dir)
    os.environ.update(env)
    return env
