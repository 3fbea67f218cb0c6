"""The pipeline steps of a dataset run, as plain functions (the DAG factory wraps them in tasks).

extract → raw partition; (Spark) raw → stage + quarantine; load → PostgreSQL staging (the run's batch);
(Soda gate on the batch); publish → swap the batch into the published table in one transaction, with its
governance (c360.governance). Every step works on one data interval and replaces its own outputs, so reruns are
idempotent.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from c360 import governance, lake, pg, settings, warehouse
from c360.registry import Dataset
from c360.warehouse import Interval, UnstorableText, column_list, ident, parquet_dataset, sql_file

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

FULL, INCREMENTAL = "full", "incremental"
MANIFEST = "_manifest"  # counts a Spark job writes beside its stage output (GA: lines → activities)


def partition_uris(ds: Dataset, interval: Interval) -> dict[str, str]:
    return {layer: lake.uri(layer, ds.name, interval.start) for layer in ("raw", "stage", "quarantine")}


# ---- extract -------------------------------------------------------------------------------------------


def published_exists(ds: Dataset) -> bool:
    return warehouse.table_exists(ds.table)


def extract(ds: Dataset, interval: Interval, mode: str) -> dict[str, Any]:
    """Copy the interval's source rows into the raw partition; return URIs and the row count.

    Raw is Parquet with every column as the source's text rendering (a string; NULL stays NULL, the empty
    string stays empty): PostgreSQL's CSV is parsed exactly (``c360.pgcsv``), so a value with line breaks,
    quotes or backslashes reaches the stage job as it is in the source. Typing is the stage job's work.

    Rows of persons erased under GDPR stay in the source (``c360.erasure.extract_filter``): they never reach
    the lake, whatever the interval or mode.
    """
    import pyarrow as pa

    from c360 import erasure, pgcsv

    uris = partition_uris(ds, interval)
    kind = "full" if mode == FULL else "interval"
    idents = {"table": ident(ds.source.table), "watermark": ident(ds.source.watermark)}
    kept, kept_params = erasure.extract_filter(ds)
    query = sql_file(f"extract/{kind}.sql", columns=column_list(ds.column_names), kept=kept, **idents)
    count_query = sql_file(f"extract/{kind}_count.sql", kept=kept, **idents)
    params = {**interval.params, **kept_params}
    target = lake.replace_partition(uris["raw"])
    schema = pa.schema([(c, pa.string()) for c in ds.column_names])
    with pg.connect(ds.source.conn_id) as conn:
        # One snapshot for the count and the copy, so the two agree.
        conn.execute("set transaction isolation level repeatable read")
        pgcsv.session_settings(conn)
        rows, suppressed = conn.execute(count_query, params).fetchone()
        future = conn.execute(sql_file("extract/future_count.sql", **idents), interval.params).fetchone()[0]
        written = pgcsv.copy_to_parquet(conn, query, params, schema, target)
    if suppressed:
        log.info("%s: %s source rows of erased persons were left out (GDPR erasure)", ds.name, suppressed)
    if written != rows:
        raise RuntimeError(f"{ds.name}: the source has {rows} rows for {lake.interval_key(interval.start)} but "
                           f"{written} were parsed from its CSV stream into {target}: rows were lost")
    if future:
        log.warning("%s: %s source rows have %s after the extract time: they belong to no interval yet and are "
                    "neither extracted nor published until one covers them", ds.name, future, ds.source.watermark)
    log.info("extracted %s rows of %s (%s) into %s", rows, ds.name, mode, target)
    return {**uris, "raw_rows": rows, "mode": mode, "future_rows": future, "suppressed_rows": suppressed}


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
    Lines of persons erased under GDPR are left out (``c360.erasure.landing_filter``).
    """
    from c360 import erasure

    uris = partition_uris(ds, interval)
    root = lake.path(f"{settings.landing_uri()}/{ds.source.path}")
    target = lake.replace_partition(uris["raw"])
    is_suppressed = erasure.landing_filter(ds)
    lines = files = suppressed = 0
    for hour in landing_hours(ds, interval):
        folder = root / hour
        found = sorted(folder.glob("*.json")) if folder.exists() else []
        if not found:
            raise FileNotFoundError(f"{ds.name}: no export files in {folder} for interval {interval.start}: "
                                    f"the GA export for this hour has not landed")
        for f in found:
            data = f.read_bytes()
            if is_suppressed is not None:
                data, dropped = erasure.filter_lines(data, is_suppressed)
                suppressed += dropped
            (target / f"{hour.replace('/', '_')}_{f.name}").write_bytes(data)
            lines += sum(1 for line in data.splitlines() if line.strip())
            files += 1
    lookup = f"{root}/{ds.source.lookup}"
    if not lake.path(lookup).exists():
        raise FileNotFoundError(f"{ds.name}: lookup file {lookup} (registry source.lookup) does not exist")
    if suppressed:
        log.info("%s: %s export lines of erased persons were left out (GDPR erasure)", ds.name, suppressed)
    log.info("copied %s files (%s lines) of %s into %s", files, lines, ds.name, target)
    return {**uris, "raw_rows": lines, "mode": INCREMENTAL, "lookup": lookup, "suppressed_rows": suppressed}


# ---- load ----------------------------------------------------------------------------------------------


def staging_table(dag_id: str, interval: Interval) -> str:
    """The run's batch table, named by DAG and interval (:func:`c360.warehouse.batch_name`): concurrent runs
    (a backfill beside the scheduled run, brand's weekly and monthly DAGs) never share one. Gone once published
    (a task cleared after that rebuilds it: :func:`ensure_batch`); kept for inspection otherwise."""
    return warehouse.batch_name(dag_id, interval.start)


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

    dataset = parquet_dataset(stage_uri)
    digest = hashlib.sha256()
    for info in dataset.filesystem.get_file_info(sorted(dataset.files)):
        digest.update(f"{info.base_name}\0{info.size}\n".encode())
    return digest.hexdigest()[:32]


def fill_batch(ds: Dataset, interval: Interval, batch: str, stage_uri: str, rows: int, mode: str) -> None:
    """(Re)create the batch table ``batch`` like the published table and COPY the stage partition into it
    (:func:`c360.warehouse.fill_batch`); a full refresh that found no rows never empties a published table.

    What load_to_staging does after its checks, and what rebuilds a batch that is gone
    (:func:`ensure_batch`): one code path, so a rebuilt batch is the batch that was loaded.
    """
    from psycopg import sql

    def refuse_empty_refresh(conn: psycopg.Connection) -> None:
        if mode == FULL and rows == 0 and conn.execute(sql.SQL("select exists (select 1 from {})").format(
                ident(ds.table))).fetchone()[0]:
            raise RuntimeError(
                f"{ds.name}: a full refresh as of {interval.end} found no rows but {ds.table} has "
                f"rows; refusing to empty it (is the source table empty or the interval wrong?)")

    try:
        warehouse.fill_batch(ds, batch, stage_uri, rows, before=refuse_empty_refresh)
    except UnstorableText as e:
        raise UnstorableText(f"{ds.name} {lake.interval_key(interval.start)}: {e}") from e


def load_staging(ds: Dataset, interval: Interval, extracted: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Reconcile counts, then COPY the stage partition into the run's batch table (``staging.<dag_id>__…``).

    The result records the stage partition and its :func:`stage_fingerprint`, so the later tasks of the run
    can rebuild the batch if it is gone (:func:`ensure_batch`)."""
    staged = parquet_dataset(extracted["stage"]).count_rows()  # from the footers: nothing read yet
    quarantined = parquet_dataset(extracted["quarantine"]).count_rows()
    _reconcile(ds, interval, extracted, staged, quarantined)
    batch = staging_table(dag_id, interval)
    fingerprint = stage_fingerprint(extracted["stage"])
    fill_batch(ds, interval, batch, extracted["stage"], staged, extracted["mode"])
    log.info("%s: staged %s rows into %s (%s quarantined)", ds.name, staged, batch, quarantined)
    return {"staged_rows": staged, "quarantined_rows": quarantined, "mode": extracted["mode"],
            "batch_table": batch, "raw_rows": extracted["raw_rows"], "future_rows": extracted.get("future_rows"),
            "stage": extracted["stage"], "stage_fingerprint": fingerprint}


class BatchUnavailable(RuntimeError):
    """The run's batch table is gone and cannot be rebuilt as it was loaded."""


def ensure_batch(ds: Dataset, interval: Interval, loaded: dict[str, Any]) -> bool:
    """Make sure the run's batch table exists; rebuild it from the run's stage partition when it is gone.

    A published batch is gone (an incremental publish drops it, a full publish renames it into place), so
    clearing check_quality or publish_table of a published run would otherwise fail. The rebuild is
    :func:`fill_batch`, the load's own code, and only from the partition load_to_staging loaded (same
    :func:`stage_fingerprint`): a partition another run rewrote since would be rows the gate never checked.
    Returns whether the batch was rebuilt.
    """
    batch = loaded["batch_table"]
    if warehouse.table_exists(batch):
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

    published, batch = ds.table, loaded["batch_table"]
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
        if not warehouse.exists(conn, batch):
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
            warehouse.drop(conn, batch)
        warehouse.log_publish(conn, ds.name, published, interval, loaded["mode"], loaded["staged_rows"], written)
        # who reads it, and how (c360.governance): a first publish creates its masking views and row security
        governance.apply(conn, [ds], interval=interval)
    log.info("published %s (%s): %s rows written, %s replaced", published, loaded["mode"], written, replaced)
    return {"table": published, "rows_written": written, "rows_replaced": replaced}
