"""The pipeline steps of a dataset run, as plain functions (the DAG factory wraps them in tasks).

extract → raw CSV partition; (Spark) raw → stage + quarantine; load → PostgreSQL staging (batch, then the
audited next version of the table); (Soda gate); publish → swap into the published table in one
transaction. Every step works on one data interval and replaces its own outputs, so reruns are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from c360 import lake, pg, settings
from c360.registry import Dataset

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

log = logging.getLogger(__name__)

FULL, INCREMENTAL = "full", "incremental"


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    run_id: str

    @property
    def params(self) -> dict[str, Any]:
        # Source timestamps are UTC wall-clock values (timestamp without time zone).
        return {"start": self.start.replace(tzinfo=None), "end": self.end.replace(tzinfo=None)}


def sql_file(name: str, **identifiers: Any):
    """An SQL file from include/sql with identifiers composed in (values stay bound parameters)."""
    from psycopg import sql

    text = (settings.SQL_DIR / name).read_text()
    return sql.SQL(text).format(**identifiers)


def ident(dotted: str):
    from psycopg import sql

    return sql.Identifier(*dotted.split("."))


def _columns(names: list[str]):
    from psycopg import sql

    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def partition_uris(ds: Dataset, interval: Interval) -> dict[str, str]:
    return {layer: lake.uri(layer, ds.name, interval.start) for layer in ("raw", "stage", "quarantine")}


# ---- extract -------------------------------------------------------------------------------------------


def published_exists(ds: Dataset) -> bool:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute("select to_regclass(%s) is not null", (ds.output.table,)).fetchone()[0]


def extract(ds: Dataset, interval: Interval, mode: str) -> dict[str, Any]:
    """Copy the interval's source rows into the raw partition (CSV, as extracted). Returns URIs and count."""
    uris = partition_uris(ds, interval)
    kind = "full" if mode == FULL else "interval"
    idents = {"table": ident(ds.source.table), "watermark": ident(ds.source.watermark)}
    query = sql_file(f"extract/{kind}.sql", columns=_columns(ds.column_names), **idents)
    count_query = sql_file(f"extract/{kind}_count.sql", **idents)
    target = lake.replace_partition(uris["raw"]) / "part-00000.csv"
    with pg.connect(ds.source.conn_id) as conn:
        # One snapshot for the count and the copy, so the two agree.
        conn.execute("set transaction isolation level repeatable read")
        rows = conn.execute(count_query, interval.params).fetchone()[0]
        with conn.cursor() as cur, cur.copy(query, interval.params) as copy, target.open("wb") as out:
            for chunk in copy:
                out.write(chunk)
    log.info("extracted %s rows of %s (%s) into %s", rows, ds.name, mode, target)
    return {**uris, "raw_rows": rows, "mode": mode}


# ---- load ----------------------------------------------------------------------------------------------


def _read_parquet(uri: str) -> pa.Table:
    import pyarrow.dataset as pads
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    p = lake.path(uri)
    if not p.exists():
        raise FileNotFoundError(f"no Spark output at {uri}: did the stage task run for this interval?")
    if uri.startswith("file:"):
        return pads.dataset(str(lake.local_path(uri)), format="parquet").to_table()
    fs = PyFileSystem(FSSpecHandler(p.fs))
    return pads.dataset(p.path, filesystem=fs, format="parquet").to_table()


def _cast_for_pg(table: pa.Table, ds: Dataset) -> pa.Table:
    """Column order and types of the registry (Spark may write ints as int32/64, timestamps as us)."""
    import pyarrow as pa

    arrow = {"string": pa.string(), "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(),
             "timestamp": pa.timestamp("us"), "date": pa.date32(), "boolean": pa.bool_()}
    return table.select(ds.column_names).cast(pa.schema([(c.name, arrow[c.type]) for c in ds.columns]))


def copy_arrow(conn: psycopg.Connection, table_name: str, table: pa.Table, chunk_rows: int = 250_000) -> None:
    """COPY an Arrow table into ``schema.table`` via CSV (PyArrow writes ~1M rows/s)."""
    import io

    import pyarrow.csv as pacsv
    from psycopg import sql

    stmt = sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        ident(table_name), _columns(table.column_names)
    )
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for offset in range(0, table.num_rows, chunk_rows):
            buf = io.BytesIO()
            pacsv.write_csv(table.slice(offset, chunk_rows), buf,
                            pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            copy.write(buf.getvalue())


def ensure_published_table(conn: psycopg.Connection, ds: Dataset) -> None:
    from psycopg import sql

    cols = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.pg_type), sql.SQL(" not null" if not c.nullable else "")
        )
        for c in ds.columns
    )
    conn.execute(sql_file("warehouse/bootstrap.sql"))
    conn.execute(
        sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
            ident(ds.output.table), cols, _columns(list(ds.business_key))
        )
    )


def staging_names(ds: Dataset) -> dict[str, str]:
    t = ds.output.table_name
    return {"batch": f"staging.{t}__batch", "next": f"staging.{t}", "published": ds.output.table}


def load_staging(ds: Dataset, interval: Interval, extracted: dict[str, Any]) -> dict[str, Any]:
    """Reconcile counts, COPY the stage partition into a batch table, build the next version of the table."""
    from psycopg import sql

    stage = _read_parquet(extracted["stage"])
    quarantined = _read_parquet(extracted["quarantine"]).num_rows
    if stage.num_rows + quarantined != extracted["raw_rows"]:
        raise RuntimeError(
            f"{ds.name} {lake.interval_key(interval.start)}: raw has {extracted['raw_rows']} rows but stage "
            f"{stage.num_rows} + quarantine {quarantined} = {stage.num_rows + quarantined}: rows were lost"
        )
    names = staging_names(ds)
    key_match = sql.SQL(" and ").join(
        sql.SQL("b.{k} = p.{k}").format(k=sql.Identifier(k)) for k in ds.business_key
    )
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        ensure_published_table(conn, ds)
        for name in (names["batch"], names["next"]):
            conn.execute(sql.SQL("drop table if exists {}").format(ident(name)))
        conn.execute(sql.SQL("create unlogged table {} (like {})").format(
            ident(names["batch"]), ident(names["published"])))
        copy_arrow(conn, names["batch"], _cast_for_pg(stage, ds))
        conn.execute(sql.SQL("create table {} (like {} including all)").format(
            ident(names["next"]), ident(names["published"])))
        merge = "warehouse/merge_full.sql" if extracted["mode"] == FULL else "warehouse/merge_incremental.sql"
        conn.execute(sql_file(merge, next=ident(names["next"]), batch=ident(names["batch"]),
                              published=ident(names["published"]), key_match_pb=key_match,
                              version=sql.Identifier(ds.version_column)))
        conn.execute(sql.SQL("analyze {}").format(ident(names["next"])))
        next_rows = conn.execute(sql.SQL("select count(*) from {}").format(ident(names["next"]))).fetchone()[0]
    log.info("%s: staged %s rows (%s quarantined); next version has %s rows",
             ds.name, stage.num_rows, quarantined, next_rows)
    return {"staged_rows": stage.num_rows, "quarantined_rows": quarantined, "next_rows": next_rows,
            "mode": extracted["mode"]}


# ---- publish -------------------------------------------------------------------------------------------


def publish(ds: Dataset, interval: Interval, loaded: dict[str, Any]) -> dict[str, Any]:
    """Swap the audited next version into the published table, in one transaction."""
    names = staging_names(ds)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # one transaction: commit at exit
        conn.execute(sql_file("warehouse/publish_swap.sql", published=ident(names["published"]),
                              next=ident(names["next"])))
        conn.execute(sql_file("warehouse/publish_log.sql"), {
            "dataset": ds.name, "table": names["published"], "start": interval.start, "end": interval.end,
            "run_id": interval.run_id, "mode": loaded["mode"], "batch_rows": loaded["staged_rows"],
            "rows": loaded["next_rows"],
        })
    log.info("published %s: %s rows", names["published"], loaded["next_rows"])
    return {"table": names["published"], "rows": loaded["next_rows"]}
