"""Derived data products (the Customer 360 outputs): the steps of a run, as of the run's interval end.

wait for inputs → export snapshots of the published inputs to the lake (Parquet) → Spark builds every output
→ load each output into a batch table → Soda gate per output → publish all outputs in one transaction:
history outputs replace their as-of date, current outputs are replaced only by a run at least as recent as
the last one (a backfill of a past date rewrites history, never today's profile).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from c360 import governance, lake, pg, settings, swap, warehouse
from c360.registry import Derived, arrow_schema, load_registry
from c360.warehouse import Interval, ident, sql_file

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# views (include/sql/outputs/) over an input's published table: (re)created only by a run that read the input
INPUT_VIEWS = {"web_analytics": "web_views.sql"}


def partition(d: Derived, as_of: datetime, part: str, name: str) -> str:
    return f"{lake.uri('analytics', d.name, as_of)}/{part}/{name}"


def absent_inputs(d: Derived) -> list[str]:
    """Optional inputs this run goes without (reads as empty): not active in the registry, or never published
    (no published table). Required inputs are never absent: the run waits for them."""
    registry = load_registry()
    absent = registry.unavailable_inputs(d)
    maybe = [name for name in d.optional_inputs if name not in absent]
    if maybe:
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            # an input that never published has no published table
            absent += [name for name in maybe if not warehouse.exists(conn, registry[name].table)]
    return absent


def input_tables(d: Derived) -> list[str]:
    """The published tables a run reads (absent optional inputs left out)."""
    registry = load_registry()
    absent = absent_inputs(d)
    return [registry[name].table for name in d.inputs if name not in absent]


def missing_inputs(d: Derived, as_of: datetime) -> list[str]:
    """Inputs whose latest scheduled interval ending at or before ``as_of`` has not been published yet
    (absent optional inputs are not waited for)."""
    from croniter import croniter

    registry = load_registry()
    naive = as_of.replace(tzinfo=None)
    missing = []
    absent = absent_inputs(d)
    if absent:
        log.info("not waiting for optional inputs that are disabled or never published: %s", ", ".join(absent))
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.bootstrap(conn)
        for name in d.inputs:
            if name in absent:
                continue
            ds = registry[name]
            it = croniter(ds.cadence.schedule, naive)
            due = it.get_prev(datetime) if not croniter.match(ds.cadence.schedule, naive) else naive
            (done,) = conn.execute(
                "select exists (select 1 from meta.publish_log where dataset = %s "
                "and interval_end at time zone 'UTC' >= %s)", (name, due)).fetchone()
            if not done:
                missing.append(f"{name} (interval ending {due:%Y-%m-%d %H:%M} UTC)")
    return missing


def export_inputs(d: Derived, as_of: datetime) -> dict[str, str]:
    """Snapshot every input's published table (rows as of now; the job filters by as-of) to Parquet; an absent
    optional input is exported empty, with its registry columns."""
    import pyarrow as pa
    from psycopg import sql

    from c360 import pgcsv

    registry = load_registry()
    absent = absent_inputs(d)
    uris: dict[str, str] = {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        pgcsv.session_settings(conn)
        for name in d.inputs:
            ds = registry[name]
            if name in absent:
                uris[name] = _export_empty(d, as_of, name, arrow_schema(ds.columns))
                continue
            stmt = sql.SQL("copy (select {} from {}) to stdout with (format csv, header true)").format(
                warehouse.column_list(ds.column_names), ident(ds.table))
            schema = arrow_schema(ds.columns)
            target = lake.replace_partition(partition(d, as_of, "inputs", name))
            rows = pgcsv.copy_to_parquet(conn, stmt, None, schema, target)
            uris[name] = lake.spark_uri(str(target))
            log.info("exported %s rows of %s", rows, ds.table)
    web = registry["web_analytics"]
    if "web_analytics" in absent:  # the visitor map is part of the web analytics source
        uris["visitor_map"] = _export_empty(d, as_of, "visitor_map", pa.schema(
            [("fullVisitorId", pa.string()), ("customer_id", pa.string())]), csv=True)
    else:
        uris["visitor_map"] = lake.spark_uri(f"{settings.landing_uri()}/{web.source.path}/{web.source.lookup}")
    return uris


def _export_empty(d: Derived, as_of: datetime, name: str, schema, csv: bool = False) -> str:
    """An input with no rows in the run's inputs partition (Parquet, or a CSV header only)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = lake.replace_partition(partition(d, as_of, "inputs", name))
    with (target / ("part-00000.csv" if csv else "part-00000.parquet")).open("wb") as f:
        if csv:
            pacsv.write_csv(schema.empty_table(), f)
        else:
            pq.write_table(schema.empty_table(), f)
    log.info("%s is an absent optional input of %s: exported empty", name, d.name)
    return lake.spark_uri(str(target))


def ensure_tables(conn: psycopg.Connection, d: Derived) -> None:
    for o in d.outputs:
        warehouse.ensure_table(conn, o)


def batch_table(d: Derived, output_name: str, as_of: datetime) -> str:
    return warehouse.batch_name(f"{d.name}_{output_name}", as_of)


def load_outputs(d: Derived, as_of: datetime) -> dict[str, Any]:
    """COPY each Spark output into its batch table (:func:`c360.warehouse.fill_batch`, like the datasets')."""
    loaded = {}
    for o in d.outputs:
        uri = partition(d, as_of, "outputs", o.name)
        written = warehouse.parquet_dataset(uri).schema.names
        if sorted(written) != sorted(o.column_names):
            raise RuntimeError(f"{d.name}.{o.name}: Spark wrote columns {written}, the registry declares "
                               f"{o.column_names} for {o.table}")
        batch = batch_table(d, o.name, as_of)
        loaded[o.name] = {"batch_table": batch, "rows": warehouse.fill_batch(o, batch, uri)}
    return loaded


def publish_outputs(d: Derived, interval: Interval, as_of: datetime, loaded: dict[str, Any]) -> dict[str, Any]:
    from psycopg import sql

    result = {}
    absent = absent_inputs(d)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # one transaction for every output
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (d.name,))
        ensure_tables(conn, d)
        (latest,) = conn.execute("select max(interval_end) from meta.publish_log where dataset = %s",
                                 (f"{d.name}.current",)).fetchone()
        is_latest = latest is None or interval.end >= latest
        for o in d.outputs:
            batch = loaded[o.name]["batch_table"]
            if o.history:  # this as-of date's rows replaced; other dates kept
                conn.execute(sql.SQL("delete from {} where as_of_date = %s").format(ident(o.table)), (as_of.date(),))
                conn.execute(sql.SQL("insert into {} select * from {}").format(ident(o.table), ident(batch)))
                warehouse.drop(conn, batch)
            elif is_latest:  # the current state: the batch becomes the table
                swap.swap_in(conn, o.table, batch)
            else:
                log.info("%s: as of %s is older than the published current state (%s); kept it", o.table,
                         as_of, latest)
                warehouse.drop(conn, batch)
                continue
            result[o.name] = loaded[o.name]["rows"]
            warehouse.log_publish(conn, o.name, o.table, interval, "history" if o.history else "current",
                                  loaded[o.name]["rows"], loaded[o.name]["rows"])
        if is_latest:  # what the current-state outputs are as of
            warehouse.log_publish(conn, f"{d.name}.current", "-", interval, "current", 0, 0)
        conn.execute(sql_file("outputs/views.sql"))
        for name, views in INPUT_VIEWS.items():
            if name in d.inputs and name not in absent:
                conn.execute(sql_file(f"outputs/{views}"))
        # who reads the outputs and the lens, and how (c360.governance), in the same transaction
        governance.apply(conn, d.outputs, lens=True, interval=interval)
    log.info("published %s as of %s: %s", d.name, as_of, result)
    return result
