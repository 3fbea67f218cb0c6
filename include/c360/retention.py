"""Retention: what the lake and the history outputs keep, and for how long (registry ``retention_days``).

The daily housekeeping DAG (``c360.lifecycle_dags``) drops, as of its run's interval end:

* **lake partitions** of a dataset (raw, stage, quarantine: ``interval=<start>``; the GA landing hours
  ``dt=/hr=`` of an export source) whose interval started more than the dataset's ``retention_days`` ago, and
  a derived product's analytics partitions (input snapshots and outputs, ``interval=<as-of>``) older than the
  product's ``retention_days``;
* **history partitions** of a history output (``as_of_date``) older than the output's ``retention_days``;
* **batch tables** left in ``staging`` (a blocked run's batch kept for inspection) whose interval is older than
  ``C360_STAGING_RETENTION_DAYS`` (default 7) and that nothing filled for as long (a backfill's batch of an old
  interval that is being checked right now stays).

No ``retention_days``: kept forever. Published tables keep their rows (they hold the current state). Every drop
is an audit trail entry (``retention_purge``) per dataset and layer, with the partitions, files and rows.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from c360 import lake, pg, settings, warehouse
from c360.registry import Registry, load_registry
from c360.warehouse import ident, sql_file

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

STAGING_ENV = "C360_STAGING_RETENTION_DAYS"
PARTITION = re.compile(r"interval=(\d{4}-\d{2}-\d{2}T\d{4})")
BATCH = re.compile(r"(.+)__(\d{8}t\d{4})")
LANDING_DAY, LANDING_HOUR = re.compile(r"dt=(\d{4}-\d{2}-\d{2})"), re.compile(r"hr=(\d{2})")


def staging_retention_days() -> int:
    raw = os.environ.get(STAGING_ENV, "7")
    if not raw.isdigit() or int(raw) < 1:
        raise settings.SettingError(f"{STAGING_ENV} must be a whole number of days >= 1, got {raw!r}")
    return int(raw)


def cutoff(now: datetime, days: int) -> datetime:
    """What started before this is past a retention of ``days`` as of ``now`` (UTC; a naive ``now`` is UTC).
    A plain datetime: Airflow's pendulum instants lose their zone in ``astimezone(UTC)``."""
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime.fromtimestamp(aware.timestamp(), UTC) - timedelta(days=days)


def partition_start(name: str) -> datetime | None:
    """The interval start of a lake partition folder ``interval=2026-11-20T0000``; None for anything else."""
    m = PARTITION.fullmatch(name)
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H%M").replace(tzinfo=UTC) if m else None


def _content(folder: ObjectStoragePath) -> tuple[int, int]:
    """(files, rows) under a partition folder: rows from Parquet footers, JSON lines, CSV lines (less the header)."""
    import pyarrow.parquet as pq

    files = rows = 0
    for f in folder.rglob("*"):
        if not f.is_file():
            continue
        files += 1
        if f.name.endswith(".parquet"):
            with f.open("rb") as src:
                rows += pq.ParquetFile(src).metadata.num_rows
        elif f.name.endswith(".json"):
            rows += sum(1 for line in f.read_bytes().splitlines() if line.strip())
        elif f.name.endswith(".csv"):
            rows += max(0, sum(1 for line in f.read_bytes().splitlines() if line.strip()) - 1)
    return files, rows


def _drop(folders: list[tuple[str, ObjectStoragePath]]) -> dict[str, Any]:
    """Delete partition folders; what they held."""
    files = rows = 0
    for _, folder in folders:
        f, r = _content(folder)
        files, rows = files + f, rows + r
        folder.rmdir(recursive=True)
    return {"partitions": sorted(key for key, _ in folders), "files": files, "rows": rows}


def expired_partitions(uri: str, cut: datetime) -> list[tuple[str, ObjectStoragePath]]:
    """(interval key, folder) of every ``interval=`` partition under ``uri`` that started before ``cut``."""
    root = lake.path(uri)
    if not root.exists():
        return []
    found = []
    for folder in root.iterdir():
        start = partition_start(folder.name)
        if start is not None and start < cut and folder.is_dir():
            found.append((folder.name.removeprefix("interval="), folder))
    return sorted(found, key=lambda x: x[0])


def expired_landing_hours(uri: str, cut: datetime) -> list[tuple[str, ObjectStoragePath]]:
    """(``dt=…/hr=…``, folder) of every landing hour under ``uri`` that started before ``cut``."""
    root = lake.path(uri)
    if not root.exists():
        return []
    found = []
    for day in root.iterdir():
        m = LANDING_DAY.fullmatch(day.name)
        if not m or not day.is_dir():
            continue
        for hour in day.iterdir():
            h = LANDING_HOUR.fullmatch(hour.name)
            if h and datetime.fromisoformat(m.group(1)).replace(hour=int(h.group(1)), tzinfo=UTC) < cut:
                found.append((f"{day.name}/{hour.name}", hour))
    return sorted(found, key=lambda x: x[0])


def _audit(subject: str, purged: dict[str, Any], **detail: Any) -> None:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.audit(conn, "retention_purge", subject, purged["rows"], detail={**detail, **purged})


def purge_lake(now: datetime, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Drop the lake partitions past retention as of ``now``; one audited entry per dataset and layer."""
    registry = registry or load_registry()
    done = []
    targets: list[tuple[str, str, int, str]] = []  # (owner, layer, days, uri)
    for ds in registry.datasets.values():
        if ds.retention_days is None:
            continue
        targets += [(ds.name, layer, ds.retention_days, lake.uri(layer, ds.name))
                    for layer in ("raw", "stage", "quarantine")]
        if ds.source.system == "ga_export":
            targets.append((ds.name, "landing", ds.retention_days, f"{settings.landing_uri()}/{ds.source.path}"))
    for d in registry.derived.values():
        if d.retention_days is not None:
            targets.append((d.name, "analytics", d.retention_days, lake.uri("analytics", d.name)))
    for owner, layer, days, uri in targets:
        cut = cutoff(now, days)
        expired = expired_landing_hours(uri, cut) if layer == "landing" else expired_partitions(uri, cut)
        if not expired:
            continue
        purged = _drop(expired)
        if layer == "landing":  # a day folder left empty goes too
            for day in {folder.parent for _, folder in expired}:
                if day.exists() and not any(day.iterdir()):
                    day.rmdir()
        entry = {"subject": f"lake:{layer}/{owner}", "dataset": owner, "layer": layer, **purged}
        _audit(entry["subject"], purged, dataset=owner, layer=layer, retention_days=days, cutoff=cut.isoformat())
        log.info("retention: dropped %s partitions of %s/%s older than %s (%s files, %s rows)",
                 len(purged["partitions"]), layer, owner, cut, purged["files"], purged["rows"])
        done.append(entry)
    return done


def purge_history(now: datetime, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Delete the as-of partitions of history outputs past retention as of ``now``, audited in the same
    transaction; serialised with the product's publish (its advisory lock)."""
    registry = registry or load_registry()
    done = []
    for d in registry.derived.values():
        for o in d.outputs:
            if not (o.history and o.retention_days):
                continue
            cut = cutoff(now, o.retention_days).date()
            with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
                if not warehouse.exists(conn, o.table):
                    continue
                conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (d.name,))
                partitions = conn.execute(sql_file("retention/history_partitions.sql", table=ident(o.table)),
                                          {"cutoff": cut}).fetchall()
                if not partitions:
                    continue
                rows = conn.execute(sql_file("retention/history_delete.sql", table=ident(o.table)),
                                    {"cutoff": cut}).rowcount
                purged = {"partitions": [p.isoformat() for p, _ in partitions], "files": 0, "rows": rows}
                warehouse.audit(conn, "retention_purge", o.table, rows, detail={
                    "dataset": o.name, "layer": "history", "retention_days": o.retention_days,
                    "cutoff": cut.isoformat(), **purged})
            log.info("retention: deleted %s as-of partitions (%s rows) of %s before %s", len(partitions), rows,
                     o.table, cut)
            done.append({"subject": o.table, "dataset": o.name, "layer": "history", **purged})
    return done


def drop_stale_batches(now: datetime, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Drop batch tables left in ``staging`` whose interval and last fill are both older than the staging
    retention; each drop audited with its rows."""
    from psycopg import sql

    from c360 import erasure

    owners = erasure.batch_owners(registry or load_registry())
    days = staging_retention_days()
    cut = cutoff(now, days)
    done = []
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.bootstrap(conn)
        tables = conn.execute(sql_file("retention/batch_tables.sql")).fetchall()
    for name, analyzed in tables:
        m = BATCH.fullmatch(name)
        if not m:
            continue
        start = datetime.strptime(m.group(2), "%Y%m%dt%H%M").replace(tzinfo=UTC)
        if start >= cut or (analyzed is not None and analyzed >= cut):
            continue
        table = f"staging.{name}"
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # the count, the drop and its entry: one transaction
            (rows,) = conn.execute(sql_file("retention/count.sql", table=ident(table))).fetchone()
            conn.execute(sql.SQL("drop table {}").format(ident(table)))
            owner = m.group(1)
            entry = owners.get(owner)
            warehouse.audit(conn, "retention_purge", table, rows, detail={
                "dataset": getattr(entry, "name", owner), "layer": "staging", "retention_days": days,
                "cutoff": cut.isoformat(), "interval_start": start.isoformat(),
                "last_filled": analyzed.isoformat() if analyzed else None})
        log.info("retention: dropped the batch table %s (%s rows, interval %s)", table, rows, start)
        done.append({"subject": table, "layer": "staging", "rows": rows})
    return done
