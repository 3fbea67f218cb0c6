"""Helpers every test tier shares (``from helpers import ...``: pytest puts ``tests/`` on the path, as for the
root conftest). Fixtures that use them are in ``tests/conftest.py``; the end-to-end tier's REST client and its
waits are in ``tests/e2e/conftest.py``.

Nothing here imports Airflow, Spark or psycopg at module level: the root conftest imports this module before it
sets the session's environment.
"""

from __future__ import annotations

import socket
from datetime import datetime


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` (bound, then closed: free until someone takes it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def fetch(conn_id: str, query: str, params=None) -> list[tuple] | None:
    """The rows ``query`` returns on the connection ``conn_id`` (None for a statement that returns none)."""
    from c360 import pg

    with pg.connect(conn_id) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def wh(query: str, params=None) -> list[tuple] | None:
    """``fetch`` on the warehouse."""
    from c360 import settings

    return fetch(settings.WAREHOUSE_CONN_ID, query, params)


def load_sources(scale):
    """Generated data of ``scale`` (a ``generator.Scale``) in the source systems and the landing zone."""
    from c360 import generator

    data = generator.generate(scale)
    generator.load_sources(data)
    generator.write_landing(data)
    return data


def run_dag(dag, logical: datetime, **conf):
    """``dag.test()`` of the run at ``logical`` (the end of its interval) with ``conf``: the run and its task
    states."""
    dr = dag.test(logical_date=logical, run_conf=conf or None)
    return dr, {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def run_succeeds(dag, logical: datetime, **conf):
    """``run_dag`` that must succeed (a failure names every task's state): the run."""
    dr, states = run_dag(dag, logical, **conf)
    assert str(dr.state) == "success", f"{dag.dag_id} {dr.run_id}: {states}"
    return dr


def create_published_tables(entries) -> None:
    """The published tables of registry ``entries`` (datasets or derived outputs), created empty if missing."""
    from c360 import pg, settings, warehouse

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for entry in entries:
            warehouse.ensure_table(conn, entry)


def _naive(ts: datetime) -> datetime:
    return ts.replace(tzinfo=None)  # the warehouse stores UTC wall clock


def key_checksum(ds, column: str | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> tuple[int, int, str]:
    """(rows, distinct business keys, md5 of the rows in key order) of a dataset's published table; with
    ``column``, of its rows whose ``column`` is in [start, end) (a bound left out is open)."""
    from psycopg import sql

    from c360 import pg, settings
    from c360.warehouse import ident

    keys = sql.SQL(", ").join(sql.Identifier(k) for k in ds.business_key)
    where, params = [sql.SQL("true")], []
    if start is not None:
        where.append(sql.SQL("{} >= %s").format(sql.Identifier(column)))
        params.append(_naive(start))
    if end is not None:
        where.append(sql.SQL("{} < %s").format(sql.Identifier(column)))
        params.append(_naive(end))
    q = sql.SQL("select count(*), count(distinct ({k})), md5(string_agg(t::text, '|' order by {k})) "
                "from {t} t where {w}").format(k=keys, t=ident(ds.output.table), w=sql.SQL(" and ").join(where))
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute(q, params).fetchone()


def duplicate_keys(ds) -> int:
    """How many rows of a dataset's published table repeat a business key (0 when it has none)."""
    n, distinct, _ = key_checksum(ds)
    return n - distinct


def reset_erasure_state() -> None:
    """An erasure module's start: an empty lake and no erasure requests, suppressions or secret (the audit trail
    is append-only and stays)."""
    import shutil

    from c360 import lake, pg, settings

    root = lake.local_path(settings.lake_uri())
    for layer in (*lake.LAYERS, "landing"):
        shutil.rmtree(root / layer, ignore_errors=True)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("drop table if exists governance.erasure_requests, governance.erasure_suppression, "
                     "governance.erasure_secret")
