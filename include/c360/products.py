"""Derived data products (the Customer 360 outputs): the steps of a run, as of the run's interval end.

wait for inputs → export snapshots of the published inputs to the lake (Parquet) → Spark builds every output
→ load each output into a batch table → Soda gate per output → publish all outputs in one transaction:
history outputs replace their as-of date, current outputs are replaced only by a run at least as recent as
the last one (a backfill of a past date rewrites history, never today's profile).

Incremental runs (a product with ``incremental_inputs``): the Spark job leaves a state (mirrors of those
inputs, per-customer aggregates, resolved identities) and the publish records it in ``meta.derived_state``
with the snapshot of the export it came from. The next run exports, of each incremental input, only the rows
written by transactions that snapshot did not see, and the job advances the state; an output the job writes
with ``<name>_replaced`` keys is published as a delta (those keys' rows replaced). A run rebuilds in full when
there is no usable state: the first run, ``full_refresh=true``, a run not after the state's as-of (a rerun
after publishing, a backfill: a backfill of a past date keeps no state), another segments spec, a state folder
gone (retention), or an incremental input changed otherwise than by an incremental publish since (a full
refresh's swap, an erasure or a purge can remove rows, which a change set of written rows cannot say).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
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


FULL, INCREMENTAL = "full", "incremental"
DELETED = "_deleted"  # the change sets' column (customer360_job.DELETED): the key is gone (never exported)


def spec_fingerprint(spec: dict) -> str:
    """The segments spec's fingerprint, as ``customer360_job.spec_fingerprint`` records it in its state."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """How a run builds: ``mode`` full or incremental, and why; ``state_in`` the state an incremental run
    advances; ``state_out`` where the run leaves its state (None: a backfill of a past date keeps none)."""

    mode: str
    reason: str
    state_in: str | None = None
    state_out: str | None = None
    since: str | None = None  # the snapshot of the export ``state_in`` was built from


class Snapshot:
    """The export transaction's snapshot: which transactions' rows it sees, and the current xid epoch (a row's
    32-bit xmin widened to the xid8 ``pg_visible_in_snapshot`` compares)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.text, xmax = conn.execute(
            "select pg_current_snapshot()::text, pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
        self.epoch, self.low = xmax >> 32, xmax & 0xFFFFFFFF

    def params(self, since: str) -> dict[str, Any]:
        return {"epoch": self.epoch, "low": self.low, "since": since}


def state_root(d: Derived) -> str:
    return lake.uri("analytics", d.name)


def _state_uri(d: Derived, as_of: datetime, exported: datetime) -> str:
    # one folder per export: a rerun never rewrites the state the warehouse records
    return f"{lake.uri('analytics', d.name, as_of)}/state/exported={exported:%Y%m%dT%H%M%S%f}"


def invalidations(conn: psycopg.Connection, d: Derived, snap: Snapshot, since: str) -> list[tuple]:
    """Audit entries, written since the snapshot ``since``, of a change to an incremental input that an
    incremental publish did not make (rows may have gone): non-empty means the state cannot be advanced."""
    registry = load_registry()
    tables = [registry[n].table for n in d.incremental_inputs]
    return conn.execute(sql_file("outputs/state_invalidated.sql"), {"tables": tables, **snap.params(since)}).fetchall()


def _state_layers_present(state_uri: str) -> str | None:
    """None if the state's folder and every layer it reads are in the lake, else what is missing."""
    try:
        meta = warehouse.parquet_dataset(f"{state_uri}/meta").to_table().to_pylist()
    except (FileNotFoundError, OSError) as e:
        return f"{state_uri}/meta: {e}"
    for uris in json.loads(meta[0]["layers"]).values() if len(meta) == 1 else [[f"{state_uri}/meta"]]:
        for uri in uris:
            if not lake.path(uri.replace("s3a://", "s3://", 1)).exists():
                return uri
    return None


def plan(conn: psycopg.Connection, d: Derived, as_of: datetime, full_refresh: bool, spec: dict,
         snap: Snapshot, exported: datetime) -> Plan:
    """Whether this run can advance the recorded state (module docstring), with the reason either way."""
    if not d.incremental_inputs:
        return Plan(FULL, "the product has no incremental inputs")
    (latest,) = conn.execute("select max(interval_end) from meta.publish_log where dataset = %s",
                             (f"{d.name}.current",)).fetchone()
    if latest is not None and as_of < latest:
        return Plan(FULL, f"a backfill of {as_of:%Y-%m-%d %H:%M}, before the published current outputs "
                          f"({latest:%Y-%m-%d %H:%M}): rebuilt, no state kept")
    state_out = _state_uri(d, as_of, exported)
    if full_refresh:
        return Plan(FULL, "full_refresh=true", state_out=state_out)
    row = conn.execute("select as_of, state_uri, snapshot, spec from meta.derived_state where product = %s",
                       (d.name,)).fetchone()
    if row is None:
        return Plan(FULL, "no recorded state (first run, or forgotten by an erasure)", state_out=state_out)
    state_as_of, state_in, since, fingerprint = row
    if state_as_of >= as_of:
        return Plan(FULL, f"the recorded state is as of {state_as_of:%Y-%m-%d %H:%M}, not before this run",
                    state_out=state_out)
    if fingerprint != spec_fingerprint(spec):
        return Plan(FULL, f"the segments spec changed since the state ({fingerprint} → {spec_fingerprint(spec)})",
                    state_out=state_out)
    missing = _state_layers_present(state_in)
    if missing:
        return Plan(FULL, f"the recorded state is incomplete in the lake ({missing})", state_out=state_out)
    changed = invalidations(conn, d, snap, since)
    if changed:
        action, subject, mode, at = changed[0]
        return Plan(FULL, f"{subject} had a {action}{f' ({mode})' if mode else ''} at {at:%Y-%m-%d %H:%M:%S} "
                          f"since the state's export ({len(changed)} such change(s))", state_out=state_out)
    return Plan(INCREMENTAL, f"advancing the state as of {state_as_of:%Y-%m-%d %H:%M}", state_in, state_out, since)


def export_inputs(d: Derived, as_of: datetime, full_refresh: bool = False,
                  spec: dict | None = None) -> dict[str, Any]:
    """Export the inputs to Parquet in one snapshot (rows as of now; the job filters by as-of): returns
    ``inputs`` (name → URI), the run's :class:`Plan` fields and ``snapshot``. A full run snapshots every
    input's published table; an incremental one exports of each incremental input the rows changed since the
    state's export (:func:`plan`). An absent optional input is exported empty, with its registry columns."""
    import psycopg as _psycopg
    import pyarrow as pa
    from psycopg import sql

    from c360 import pgcsv
    from c360.segments import load_segments

    registry = load_registry()
    spec = spec if spec is not None else load_segments().spec()
    absent = absent_inputs(d)
    uris: dict[str, str] = {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        # every input read in one snapshot: the next incremental run starts where this one saw
        conn.isolation_level = _psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        pgcsv.session_settings(conn)
        snap = Snapshot(conn)
        (exported,) = conn.execute("select clock_timestamp()").fetchone()
        run = plan(conn, d, as_of, full_refresh, spec, snap, exported)
        log.info("%s as of %s: %s build (%s)", d.name, as_of, run.mode, run.reason)
        for name in d.inputs:
            ds = registry[name]
            if name in absent:
                uris[name] = _export_empty(d, as_of, name, arrow_schema(ds.columns))
                continue
            schema = arrow_schema(ds.columns)
            if run.mode == INCREMENTAL and name in d.incremental_inputs:
                query = sql_file("outputs/changed_rows.sql", columns=warehouse.column_list(ds.column_names),
                                 deleted=sql.Identifier(DELETED), table=ident(ds.table))
                params = snap.params(run.since)
                schema = schema.append(pa.field(DELETED, pa.bool_()))
            else:
                query = sql.SQL("select {} from {}").format(warehouse.column_list(ds.column_names), ident(ds.table))
                params = None
            stmt = sql.SQL("copy ({}) to stdout with (format csv, header true)").format(query)
            target = lake.replace_partition(partition(d, as_of, "inputs", name))
            rows = pgcsv.copy_to_parquet(conn, stmt, params, schema, target)
            uris[name] = lake.spark_uri(str(target))
            log.info("exported %s %s of %s", rows, "changed rows" if params else "rows", ds.table)
    web = registry["web_analytics"]
    if "web_analytics" in absent:  # the visitor map is part of the web analytics source
        uris["visitor_map"] = _export_empty(d, as_of, "visitor_map", pa.schema(
            [("fullVisitorId", pa.string()), ("customer_id", pa.string())]), csv=True)
    else:
        uris["visitor_map"] = lake.spark_uri(f"{settings.landing_uri()}/{web.source.path}/{web.source.lookup}")
    # the outputs partition emptied too: a rerun's load never finds a file an earlier attempt left
    lake.replace_partition(partition(d, as_of, "outputs", "").rstrip("/"))
    return {"inputs": uris, **asdict(run), "snapshot": snap.text, "spec": spec_fingerprint(spec)}


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


def load_outputs(d: Derived, as_of: datetime, mode: str = FULL) -> dict[str, Any]:
    """COPY each Spark output into its batch table (:func:`c360.warehouse.fill_batch`, like the datasets'). In
    an incremental run an output the job wrote with ``<name>_replaced`` is a delta: its keys (the output's
    first key column) go into a second batch table, ``replaced_table``, for the publish."""
    from psycopg import sql

    loaded = {}
    for o in d.outputs:
        uri = partition(d, as_of, "outputs", o.name)
        written = warehouse.parquet_dataset(uri).schema.names
        if sorted(written) != sorted(o.column_names):
            raise RuntimeError(f"{d.name}.{o.name}: Spark wrote columns {written}, the registry declares "
                               f"{o.column_names} for {o.table}")
        batch = batch_table(d, o.name, as_of)
        loaded[o.name] = {"batch_table": batch, "rows": warehouse.fill_batch(o, batch, uri)}
        replaced_uri = partition(d, as_of, "outputs", f"{o.name}_replaced")
        if mode != INCREMENTAL or not lake.path(replaced_uri).exists():
            continue
        if o.history:
            raise RuntimeError(f"{d.name}.{o.name}: a history output is never a delta (found {replaced_uri})")
        keys = warehouse.parquet_dataset(replaced_uri).to_table()
        key = o.key[0]
        if keys.column_names != [key]:
            raise RuntimeError(f"{replaced_uri}: expected the one column {key!r}, found {keys.column_names}")
        replaced = batch_table(d, f"{o.name}_replaced", as_of)
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(ident(replaced)))
            conn.execute(sql.SQL("create table {} as select {} from {} where false").format(
                ident(replaced), sql.Identifier(key), ident(o.table)))
            warehouse.copy_arrow(conn, replaced, keys)
            conn.execute(sql.SQL("analyze {}").format(ident(replaced)))
        loaded[o.name].update(replaced_table=replaced, replaced_keys=keys.num_rows)
    return loaded


def publish_outputs(d: Derived, interval: Interval, as_of: datetime, loaded: dict[str, Any],
                    exported: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish every output in one transaction; ``exported``: what :func:`export_inputs` returned (the state
    the run leaves is recorded here, in the same transaction, when the run is the latest)."""
    from psycopg import sql

    result = {}
    absent = absent_inputs(d)
    exported = exported or {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # one transaction for every output
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (d.name,))
        ensure_tables(conn, d)
        (latest,) = conn.execute("select max(interval_end) from meta.publish_log where dataset = %s",
                                 (f"{d.name}.current",)).fetchone()
        is_latest = latest is None or interval.end >= latest
        for o in d.outputs:
            batch = loaded[o.name]["batch_table"]
            replaced = loaded[o.name].get("replaced_table")
            if o.history:  # this as-of date's rows replaced; other dates kept
                conn.execute(sql.SQL("delete from {} where as_of_date = %s").format(ident(o.table)), (as_of.date(),))
                conn.execute(sql.SQL("insert into {} select * from {}").format(ident(o.table), ident(batch)))
                warehouse.drop(conn, batch)
            elif not is_latest:
                log.info("%s: as of %s is older than the published current state (%s); kept it", o.table,
                         as_of, latest)
                for table in (batch, replaced):
                    if table:
                        warehouse.drop(conn, table)
                continue
            elif replaced:  # a delta: the replaced keys' rows out, the batch's rows in
                key = sql.Identifier(o.key[0])
                removed = conn.execute(sql_file("outputs/publish_delta_delete.sql", published=ident(o.table),
                                                replaced=ident(replaced), key=key)).rowcount
                conn.execute(sql.SQL("insert into {} select * from {}").format(ident(o.table), ident(batch)))
                log.info("%s: delta of %s keys: %s rows out, %s in", o.table, loaded[o.name]["replaced_keys"],
                         removed, loaded[o.name]["rows"])
                warehouse.drop(conn, batch)
                warehouse.drop(conn, replaced)
            else:  # the current state: the batch becomes the table
                swap.swap_in(conn, o.table, batch)
            result[o.name] = loaded[o.name]["rows"]
            mode = "history" if o.history else "delta" if replaced else "current"
            warehouse.log_publish(conn, o.name, o.table, interval, mode, loaded[o.name]["rows"],
                                  loaded[o.name]["rows"])
        if is_latest:  # what the current-state outputs are as of
            warehouse.log_publish(conn, f"{d.name}.current", "-", interval, "current", 0, 0)
        kept = _record_state(conn, d, as_of, exported, interval) if is_latest else None
        conn.execute(sql_file("outputs/views.sql"))
        for name, views in INPUT_VIEWS.items():
            if name in d.inputs and name not in absent:
                conn.execute(sql_file(f"outputs/{views}"))
        # who reads the outputs and the lens, and how (c360.governance), in the same transaction
        governance.apply(conn, d.outputs, lens=True, interval=interval)
    if kept is not None:
        drop_states(d, keep=kept)
    log.info("published %s as of %s: %s", d.name, as_of, result)
    return result


def _record_state(conn: psycopg.Connection, d: Derived, as_of: datetime, exported: dict[str, Any],
                  interval: Interval) -> list[str] | None:
    """Record the state the run left (in the publish transaction): returns the state folders to keep (the
    state and those its layers read), or None when the recorded state is left as it is (the run left none)."""
    state_out = exported.get("state_out")
    if not state_out:
        return None
    # an erasure or a full refresh of an input since this run's export: its state may hold rows that are gone
    changed = invalidations(conn, d, Snapshot(conn), exported["snapshot"])
    if changed:
        log.warning("%s: not recording this run's state: %s changed since its export (%s); the next run "
                    "rebuilds in full", d.name, changed[0][1], changed[0][0])
        conn.execute("delete from meta.derived_state where product = %s", (d.name,))
        return []
    conn.execute(sql_file("outputs/derived_state_record.sql"), {
        "product": d.name, "as_of": as_of, "state_uri": state_out, "snapshot": exported["snapshot"],
        "spec": exported["spec"], "run_id": interval.run_id})
    meta = warehouse.parquet_dataset(f"{state_out}/meta").to_table().to_pylist()
    layers = [u.replace("s3a://", "s3://", 1) for uris in json.loads(meta[0]["layers"]).values() for u in uris]
    return [state_out, *{u.rsplit("/", 1)[0] for u in layers}]


def state_folders(d: Derived) -> list[str]:
    """Every state folder of ``d`` in the lake (``interval=<as-of>/state/exported=<time>``)."""
    root = lake.path(state_root(d))
    if not root.exists():
        return []
    found = []
    for interval_dir in root.iterdir():
        state = interval_dir / "state"
        if interval_dir.name.startswith("interval=") and state.exists():
            found += [f"{state_root(d)}/{interval_dir.name}/state/{f.name}" for f in state.iterdir()]
    return sorted(found)


def drop_states(d: Derived, keep: list[str] = ()) -> list[str]:
    """Delete ``d``'s state folders but ``keep`` (after the publish that recorded the kept one, or an erasure:
    a state holds the mirrored inputs' rows). Returns what was deleted."""
    keep_set = {k.rstrip("/") for k in keep}
    dropped = [f for f in state_folders(d) if f not in keep_set]
    for f in dropped:
        lake.path(f).rmdir(recursive=True)
    if dropped:
        log.info("%s: deleted %s state folder(s) no state reads any more: %s", d.name, len(dropped), dropped)
    return dropped


def forget_states(conn: psycopg.Connection) -> list[Derived]:
    """Forget every derived product's recorded state (in the caller's transaction; e.g. an erasure's): their
    next runs rebuild in full. Returns the products whose state folders the caller then deletes."""
    warehouse.bootstrap(conn)
    names = {r[0] for r in conn.execute("delete from meta.derived_state returning product")}
    return [d for d in load_registry().derived.values() if d.incremental_inputs or d.name in names]
