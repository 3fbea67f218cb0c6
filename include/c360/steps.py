"""The pipeline steps of a dataset run, as plain functions (the DAG factory wraps them in tasks).

extract → raw partition; (Spark) raw → stage + quarantine; load → PostgreSQL staging (the run's batch);
(Soda gate on the batch); publish → swap the batch into the published table in one transaction. Every step works on one data interval and replaces its own outputs, so reruns are idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from c360 import lake, pg, settings
from c360.registry import Dataset

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    import pyarrow as pa
    import pyarrow.dataset as pads

log = logging.getLogger(__name__)

FULL, INCREMENTAL = "full", "incremental"
MANIFEST = "_manifest"  # counts a Spark job writes beside its stage output (GA: lines → activities)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    run_id: str
    dag_id: str = ""

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
    """Copy the interval's source rows into the raw partition; return URIs and the row count.

    Raw is Parquet with every column as the source's text rendering (a string; NULL stays NULL, the empty
    string stays empty): PostgreSQL's CSV is parsed exactly (``c360.pgcsv``), so a value with line breaks,
    quotes or backslashes reaches the stage job as it is in the source. Typing is the stage job's work.
    """
    import pyarrow as pa

    from c360 import pgcsv

    uris = partition_uris(ds, interval)
    kind = "full" if mode == FULL else "interval"
    idents = {"table": ident(ds.source.table), "watermark": ident(ds.source.watermark)}
    query = sql_file(f"extract/{kind}.sql", columns=_columns(ds.column_names), **idents)
    count_query = sql_file(f"extract/{kind}_count.sql", **idents)
    target = lake.replace_partition(uris["raw"])
    schema = pa.schema([(c, pa.string()) for c in ds.column_names])
    with pg.connect(ds.source.conn_id) as conn:
        # One snapshot for the count and the copy, so the two agree.
        conn.execute("set transaction isolation level repeatable read")
        pgcsv.session_settings(conn)
        rows = conn.execute(count_query, interval.params).fetchone()[0]
        future = conn.execute(sql_file("extract/future_count.sql", **idents), interval.params).fetchone()[0]
        written = pgcsv.copy_to_parquet(conn, query, interval.params, schema, target)
    if written != rows:
        raise RuntimeError(f"{ds.name}: the source has {rows} rows for {lake.interval_key(interval.start)} but "
                           f"{written} were parsed from its CSV stream into {target}: rows were lost")
    if future:
        log.warning("%s: %s source rows have %s after the extract time: they belong to no interval yet and are "
                    "neither extracted nor published until one covers them", ds.name, future, ds.source.watermark)
    log.info("extracted %s rows of %s (%s) into %s", rows, ds.name, mode, target)
    return {**uris, "raw_rows": rows, "mode": mode, "future_rows": future}


def landing_hours(ds: Dataset, interval: Interval) -> list[str]:
    """Landing partitions (one per hour, by visit start) of the interval: ``dt=YYYY-MM-DD/hr=HH``."""
    from datetime import timedelta

    hours, t = [], interval.start.replace(minute=0, second=0, microsecond=0)
    if t < interval.start:
        t += timedelta(hours=1)
    while t < interval.end:
        hours.append(f"dt={t:%Y-%m-%d}/hr={t:%H}")
        t += timedelta(hours=1)
    return hours


def extract_landing(ds: Dataset, interval: Interval) -> dict[str, Any]:
    """Copy the interval's GA export files, unchanged, into the raw partition; count their non-blank lines.

    A missing hour fails the task (the export is late: retries wait for it) instead of publishing nothing.
    """
    uris = partition_uris(ds, interval)
    root = lake.path(f"{settings.landing_uri()}/{ds.source.path}")
    target = lake.replace_partition(uris["raw"])
    lines = files = 0
    for hour in landing_hours(ds, interval):
        folder = root / hour
        found = sorted(folder.glob("*.json")) if folder.exists() else []
        if not found:
            raise FileNotFoundError(f"{ds.name}: no export files in {folder} for interval {interval.start}: "
                                    f"the GA export for this hour has not landed")
        for f in found:
            data = f.read_bytes()
            (target / f"{hour.replace('/', '_')}_{f.name}").write_bytes(data)
            lines += sum(1 for line in data.splitlines() if line.strip())
            files += 1
    lookup = f"{root}/{ds.source.lookup}"
    if not lake.path(lookup).exists():
        raise FileNotFoundError(f"{ds.name}: lookup file {lookup} (registry source.lookup) does not exist")
    log.info("copied %s files (%s lines) of %s into %s", files, lines, ds.name, target)
    return {**uris, "raw_rows": lines, "mode": INCREMENTAL, "lookup": lookup}


# ---- load ----------------------------------------------------------------------------------------------


def _parquet_dataset(uri: str) -> pads.Dataset:
    import pyarrow.dataset as pads
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    p = lake.path(uri)
    if not p.exists():
        raise FileNotFoundError(f"no Spark output at {uri}: did the stage task run for this interval?")
    if uri.startswith("file:"):
        return pads.dataset(str(lake.local_path(uri)), format="parquet")
    fs = PyFileSystem(FSSpecHandler(p.fs))
    return pads.dataset(p.path, filesystem=fs, format="parquet")


def _read_parquet(uri: str) -> pa.Table:
    return _parquet_dataset(uri).to_table()


def copy_parquet(uri: str, table_name: str, prepare: Callable[[pa.Table], pa.Table],
                 streams: int | None = None) -> int:
    """COPY a Parquet partition into a (committed) table over ``streams`` connections at once; returns the rows.

    PostgreSQL parses a COPY stream on one core, so a single stream leaves the others idle (two streams load
    40M rows 1.5x faster on 2 cores). Record batches are read as the streams need them: the partition is never
    held in memory whole. A failed stream fails the load; the table is then partly filled (the caller drops
    and recreates it on the rerun).
    """
    import queue
    import threading

    import pyarrow as pa

    streams = streams or settings.copy_streams()
    batches: queue.Queue = queue.Queue(maxsize=2 * streams)
    errors: list[BaseException] = []
    rows = 0

    def stream() -> None:
        try:
            with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
                while (batch := batches.get()) is not None:
                    if not errors:  # after a failure, only drain so the reader never blocks
                        copy_arrow(conn, table_name, prepare(pa.Table.from_batches([batch])))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            while batches.get() is not None:
                pass

    workers = [threading.Thread(target=stream, name=f"copy-{table_name}-{n}") for n in range(streams)]
    for w in workers:
        w.start()
    try:
        for batch in _parquet_dataset(uri).to_batches(batch_size=250_000):
            if errors:
                break
            rows += batch.num_rows
            batches.put(batch)
    finally:
        for _ in workers:
            batches.put(None)
        for w in workers:
            w.join()
    if errors:
        raise errors[0]
    return rows


def _cast_for_pg(table: pa.Table, ds: Dataset) -> pa.Table:
    """Column order and types of the registry (Spark may write ints as int32/64, timestamps as us)."""
    return table.select(ds.column_names).cast(arrow_schema(ds.columns))


def arrow_schema(columns) -> pa.Schema:
    """The Arrow schema of registry columns (one type map for every reader and writer)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(),
             "timestamp": pa.timestamp("us"), "date": pa.date32(), "boolean": pa.bool_()}
    return pa.schema([(c.name, types[c.type]) for c in columns])


class UnstorableText(ValueError):
    """A text value PostgreSQL cannot store (NUL, or bytes that are not UTF-8) failed a COPY."""


def _unstorable_text(table: pa.Table) -> str | None:
    """The first text value of ``table`` PostgreSQL cannot store, described (column, row, what); else None.
    Only called after a COPY failed on one: it reads every text value in Python."""
    import pyarrow as pa

    key = table.column_names[0]
    for name in table.column_names:
        if not pa.types.is_string(table.schema.field(name).type):
            continue
        for row, value in enumerate(table[name].cast(pa.binary()).to_pylist()):
            if value is None:
                continue
            problem = "holds NUL (U+0000)" if b"\x00" in value else None
            try:
                value.decode()
            except UnicodeDecodeError as e:
                problem = f"is not valid UTF-8 (byte 0x{value[e.start]:02x} at offset {e.start})"
            if problem:
                where = f"row {row} of the batch" if name == key else f"{key}={table[key][row].as_py()!r}"
                return f"column {name!r} ({where}) {problem}: {value[:60]!r}"
    return None


def copy_arrow(conn: psycopg.Connection, table_name: str, table: pa.Table, chunk_rows: int = 250_000) -> None:
    """COPY an Arrow table into ``schema.table`` via CSV (PyArrow writes ~1M rows/s).

    PostgreSQL judges the text: a value it cannot store (NUL, bad UTF-8) fails the COPY, and the error
    (:class:`UnstorableText`) then names the column and the row instead of only the byte."""
    import io

    import psycopg
    import pyarrow.csv as pacsv
    from psycopg import sql

    stmt = sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        ident(table_name), _columns(table.column_names)
    )
    try:
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for offset in range(0, table.num_rows, chunk_rows):
                buf = io.BytesIO()
                pacsv.write_csv(table.slice(offset, chunk_rows), buf,
                                pacsv.WriteOptions(include_header=False, quoting_style="needed"))
                copy.write(buf.getvalue())
    except psycopg.errors.CharacterNotInRepertoire as e:  # 22021: invalid byte sequence for encoding "UTF8"
        found = _unstorable_text(table)
        if found is None:
            raise
        raise UnstorableText(f"COPY into {table_name}: {found}, which PostgreSQL text cannot store") from e


def ensure_published_table(conn: psycopg.Connection, ds: Dataset) -> None:
    from psycopg import sql

    # text keys compare byte-wise (collation "C"): ids have no linguistic order, and the key index builds
    # ~1.7x faster than under the server's locale (40M keys: 18.6 s against 32.4 s)
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}{}{}").format(
            sql.Identifier(c.name), sql.SQL(c.pg_type),
            sql.SQL(' collate "C"' if c.name in ds.business_key and c.pg_type == "text" else ""),
            sql.SQL(" not null" if not c.nullable else ""),
        )
        for c in ds.columns
    )
    conn.execute(sql_file("warehouse/bootstrap.sql"))
    conn.execute(
        sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
            ident(ds.output.table), cols, _columns(list(ds.business_key))
        )
    )
    for columns in ds.output.indexes:
        name = f"{ds.output.table_name}__{'_'.join(columns)}_idx"
        conn.execute(sql.SQL("create index if not exists {} on {} ({})").format(
            sql.Identifier(name), ident(ds.output.table), _columns(list(columns))))


def staging_table(ds: Dataset, dag_id: str, interval: Interval) -> str:
    """The run's batch table, named by DAG and interval: concurrent runs (a backfill beside the scheduled run,
    brand's weekly and monthly DAGs) never share one. Gone once published (a task cleared after that rebuilds it:
    :func:`ensure_batch`); kept for inspection otherwise."""
    # lower case, no punctuation: an identifier that needs no quoting in any tool (Soda builds its own SQL)
    return f"staging.{dag_id}__{interval.start:%Y%m%dt%H%M}"


def _reconcile(ds: Dataset, interval: Interval, extracted: dict[str, Any], staged: int, quarantined: int) -> None:
    """Nothing accepted is lost: every raw unit is staged or quarantined (a GA line yields many activities)."""
    where = f"{ds.name} {lake.interval_key(interval.start)}"
    if ds.source.system == "ga_export":
        manifest = read_manifest(extracted["stage"])
        if manifest["parsed_lines"] + quarantined != extracted["raw_rows"]:
            raise RuntimeError(
                f"{where}: raw has {extracted['raw_rows']} lines but Spark parsed {manifest['parsed_lines']} "
                f"and quarantined {quarantined}: lines were lost"
            )
        if manifest["activities"] != staged:
            raise RuntimeError(f"{where}: Spark flattened {manifest['activities']} activities, stage has {staged}")
    elif staged + quarantined != extracted["raw_rows"]:
        raise RuntimeError(
            f"{where}: raw has {extracted['raw_rows']} rows but stage {staged} + quarantine {quarantined} = "
            f"{staged + quarantined}: rows were lost"
        )


def read_manifest(stage_uri: str) -> dict[str, Any]:
    import json

    p = lake.path(f"{stage_uri}/{MANIFEST}")
    files = [f for f in p.iterdir() if f.name.startswith("part-")] if p.exists() else []
    if len(files) != 1:
        raise FileNotFoundError(f"no Spark manifest at {p}: did the stage task run for this interval?")
    return json.loads(files[0].read_text())


def stage_fingerprint(stage_uri: str) -> str:
    """What a stage partition holds, cheaply: a hash of its Parquet files' names and sizes (Spark names the
    files of every write anew). A batch rebuilt from the partition later holds what was loaded and gated
    only if the fingerprint is the one recorded at the load."""
    import hashlib

    dataset = _parquet_dataset(stage_uri)
    digest = hashlib.sha256()
    for info in dataset.filesystem.get_file_info(sorted(dataset.files)):
        digest.update(f"{info.base_name}\0{info.size}\n".encode())
    return digest.hexdigest()[:32]


def fill_batch(ds: Dataset, interval: Interval, batch: str, stage_uri: str, rows: int, mode: str) -> None:
    """(Re)create the batch table ``batch`` like the published table and COPY the stage partition into it.

    What load_to_staging does after its checks, and what rebuilds a batch that is gone
    (:func:`ensure_batch`): one code path, so a rebuilt batch is the batch that was loaded.
    """
    from psycopg import sql

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # committed before the COPY streams connect
        ensure_published_table(conn, ds)
        if mode == FULL and rows == 0:
            published = conn.execute(sql.SQL("select exists (select 1 from {})").format(
                ident(ds.output.table))).fetchone()[0]
            if published:
                raise RuntimeError(
                    f"{ds.name}: a full refresh as of {interval.end} found no rows but {ds.output.table} has "
                    f"rows; refusing to empty it (is the source table empty or the interval wrong?)"
                )
        conn.execute(sql.SQL("drop table if exists {}").format(ident(batch)))
        # no indexes: COPY into a bare table is fastest; duplicate keys fail the gate, then the published key
        conn.execute(sql.SQL("create table {} (like {} including defaults including constraints)").format(
            ident(batch), ident(ds.output.table)))
    try:
        copied = copy_parquet(stage_uri, batch, lambda t: _cast_for_pg(t, ds))
    except UnstorableText as e:
        raise UnstorableText(f"{ds.name} {lake.interval_key(interval.start)}: {e}") from e
    if copied != rows:
        raise RuntimeError(f"{ds.name}: the stage partition has {rows} rows but {copied} were copied into {batch}")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(sql.SQL("analyze {}").format(ident(batch)))


def load_staging(ds: Dataset, interval: Interval, extracted: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Reconcile counts, then COPY the stage partition into the run's batch table (``staging.<dag_id>__…``).

    The result records the stage partition and its :func:`stage_fingerprint`, so the later tasks of the run
    can rebuild the batch if it is gone (:func:`ensure_batch`)."""
    staged = _parquet_dataset(extracted["stage"]).count_rows()  # from the footers: nothing read yet
    quarantined = _parquet_dataset(extracted["quarantine"]).count_rows()
    _reconcile(ds, interval, extracted, staged, quarantined)
    batch = staging_table(ds, dag_id, interval)
    fingerprint = stage_fingerprint(extracted["stage"])
    fill_batch(ds, interval, batch, extracted["stage"], staged, extracted["mode"])
    log.info("%s: staged %s rows into %s (%s quarantined)", ds.name, staged, batch, quarantined)
    return {"staged_rows": staged, "quarantined_rows": quarantined, "mode": extracted["mode"],
            "batch_table": batch, "raw_rows": extracted["raw_rows"], "future_rows": extracted.get("future_rows"),
            "stage": extracted["stage"], "stage_fingerprint": fingerprint}


class BatchUnavailable(RuntimeError):
    """The run's batch table is gone and cannot be rebuilt as it was loaded."""


def batch_exists(batch: str) -> bool:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute("select to_regclass(%s) is not null", (batch,)).fetchone()[0]


def ensure_batch(ds: Dataset, interval: Interval, loaded: dict[str, Any]) -> bool:
    """Make sure the run's batch table exists; rebuild it from the run's stage partition when it is gone.

    A published batch is gone (an incremental publish drops it, a full publish renames it into place), so
    clearing check_quality or publish_table of a published run would otherwise fail. The rebuild is
    :func:`fill_batch`, the load's own code, and only from the partition load_to_staging loaded (same
    :func:`stage_fingerprint`): a partition another run rewrote since would be rows the gate never checked.
    Returns whether the batch was rebuilt.
    """
    batch = loaded["batch_table"]
    if batch_exists(batch):
        return False
    where = f"{ds.name} {lake.interval_key(interval.start)}: batch table {batch} is gone"
    stage, recorded = loaded.get("stage"), loaded.get("stage_fingerprint")
    if not stage or not recorded:
        raise BatchUnavailable(f"{where} and load_to_staging recorded no stage partition to rebuild it from; "
                               f"clear the run from load_to_staging")
    try:
        found = stage_fingerprint(stage)
    except FileNotFoundError as e:
        raise BatchUnavailable(f"{where} and so is its stage partition ({e}); clear the run from "
                               f"stage_with_spark") from e
    if found != recorded:
        raise BatchUnavailable(f"{where} and the stage partition {stage} was rewritten since load_to_staging "
                               f"loaded it: rebuilding would bypass the gate; clear the run from load_to_staging")
    fill_batch(ds, interval, batch, stage, loaded["staged_rows"], loaded["mode"])
    log.info("%s: rebuilt the batch table %s from %s (%s rows)", ds.name, batch, stage, loaded["staged_rows"])
    return True


# ---- publish -------------------------------------------------------------------------------------------


def publish(ds: Dataset, interval: Interval, loaded: dict[str, Any]) -> dict[str, Any]:
    """Swap the audited batch into the published table, in one transaction.

    Full: the batch replaces the table (rows deleted at the source disappear), keeping the published rows
    newer than the refresh's interval end (``full_keep_newer.sql``). Incremental: the batch is
    upserted by business key, a row replacing a published one only if its version is the same or newer, so
    the cost follows the batch and replaying an old interval never overwrites a later change.

    Publishing the same batch again gives the same table (the upsert replaces rows by equal ones; the swap
    keeps what is newer), and ``meta.publish_log`` keeps one row per dataset and DAG run. So a run whose
    batch was published already is published again from its rebuilt batch (:func:`ensure_batch`).
    """
    from psycopg import sql

    published, batch = ds.output.table, loaded["batch_table"]
    ensure_batch(ds, interval, loaded)  # its COPY streams commit before the publish transaction
    key_match = sql.SQL(" and ").join(
        sql.SQL("b.{k} = p.{k}").format(k=sql.Identifier(k)) for k in ds.business_key
    )
    idents = {"published": ident(published), "batch": ident(batch), "key_match_pb": key_match,
              "version": sql.Identifier(ds.version_column), "watermark": sql.Identifier(ds.source.watermark),
              "first_key": sql.Identifier(ds.business_key[0])}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # one transaction: commit at exit
        # publishes of one table queue behind each other (e.g. a backfill next to the scheduled run)
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (published,))
        if conn.execute("select to_regclass(%s) is null", (batch,)).fetchone()[0]:
            # ensure_batch ran before this transaction: only a concurrent publish of the same run gets here
            raise BatchUnavailable(f"{ds.name}: batch table {batch} was published or dropped by another "
                                   f"process while this one waited; clear publish_table")
        if loaded["mode"] == FULL:
            from c360 import swap

            # published rows newer than the refresh stay (a refresh of an older interval undoes nothing)
            kept, net = conn.execute(sql_file("warehouse/full_keep_newer.sql", **idents),
                                     interval.params).fetchone()
            if kept:
                log.info("%s: kept %s published rows newer than the refresh as of %s", ds.name, kept, interval.end)
            # the batch becomes the table (rows deleted at the source disappear); readers see the old rows
            # until commit
            swap.swap_in(conn, published, batch)
            replaced, written = None, loaded["staged_rows"] + net
        else:
            replaced = conn.execute(sql_file("warehouse/publish_delete.sql", **idents)).rowcount
            written = conn.execute(sql_file("warehouse/publish_insert.sql", **idents)).rowcount
            conn.execute(sql.SQL("drop table {}").format(ident(batch)))
        conn.execute(sql_file("warehouse/publish_log.sql"), {
            "dataset": ds.name, "table": published, "start": interval.start, "end": interval.end,
            "run_id": interval.run_id, "mode": loaded["mode"], "batch_rows": loaded["staged_rows"],
            "rows": written,
        })
    log.info("published %s (%s): %s rows written, %s replaced", published, loaded["mode"], written, replaced)
    return {"table": published, "rows_written": written, "rows_replaced": replaced}
