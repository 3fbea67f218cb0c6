"""Retention end to end: the housekeeping DAG, built from a copy of the registry with short retention, drops
the lake partitions, landing hours, analytics partitions, history partitions and stale batch tables past
retention and keeps the recent ones (and everything of a dataset kept forever); every drop is an audit entry
with its counts, and no role can change or remove one."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import run_succeeds, wh

from c360 import lake, lifecycle_dags, pg, settings, warehouse
from c360.registry import REGISTRY_FILE, load_registry, parse_registry

pytestmark = pytest.mark.integration

RUN_END = datetime(2026, 11, 21, 5, 30, tzinfo=UTC)  # the housekeeping run's interval end: "now"
OLD, RECENT = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)


def _short_registry():
    """The registry with short retention: customer 3 days, web analytics 2, the Customer 360 lake partitions 5,
    rfm 10 (orders keep 90, product forever, segment membership 730: as in the real registry)."""
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    data["datasets"]["customer"]["retention_days"] = 3
    data["datasets"]["web_analytics"]["retention_days"] = 2
    data["derived"]["customer_360"]["retention_days"] = 5
    (rfm,) = [o for o in data["derived"]["customer_360"]["outputs"] if o["name"] == "rfm"]
    rfm["retention_days"] = 10
    return parse_registry(yaml.safe_dump(data), source="short retention")


def _partition(uri: str, rows: int, extra: tuple[str, ...] = ()) -> None:
    folder = lake.local_path(uri)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_id": [f"C{i}" for i in range(rows)]}), folder / "part-00000.parquet")
    for name in extra:
        (folder / name).write_bytes(b"")


@pytest.fixture(scope="module")
def purged(fresh_warehouse):
    registry = _short_registry()
    root = lake.local_path(settings.lake_uri())
    for layer in (*lake.LAYERS, "landing"):
        shutil.rmtree(root / layer, ignore_errors=True)
    # lake partitions, old and recent
    for layer in ("raw", "stage", "quarantine"):
        for ds in ("customer", "orders"):
            _partition(lake.uri(layer, ds, OLD), 4, ("_SUCCESS", ".part-00000.parquet.crc") if layer == "stage" else ())
            _partition(lake.uri(layer, ds, RECENT), 2)
    _partition(lake.uri("raw", "product", datetime(2020, 1, 6, 2, tzinfo=UTC)), 3)  # product: kept forever
    for when, lines in ((datetime(2026, 11, 17, 5, tzinfo=UTC), 3), (datetime(2026, 11, 20, 23, tzinfo=UTC), 2)):
        hour = root / "landing" / "web_analytics" / f"dt={when:%Y-%m-%d}" / f"hr={when:%H}"
        hour.mkdir(parents=True, exist_ok=True)
        (hour / "ga.json").write_text("".join('{"fullVisitorId":"V1"}\n' for _ in range(lines)))
    (root / "landing" / "web_analytics" / "visitor_map").mkdir(parents=True, exist_ok=True)
    (root / "landing" / "web_analytics" / "visitor_map" / "visitor_map.csv").write_text("fullVisitorId,customer_id\n")
    for as_of in (OLD, RECENT + timedelta(days=1)):
        _partition(f"{lake.uri('analytics', 'customer_360', as_of)}/inputs/customer", 5)
        _partition(f"{lake.uri('analytics', 'customer_360', as_of)}/outputs/rfm", 1, ("_SUCCESS",))
    # history partitions
    outputs = {o.name: o for o in registry.derived["customer_360"].outputs}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for o in outputs.values():
            warehouse.ensure_table(conn, o)
        for as_of, n in ((date(2026, 11, 1), 3), (date(2026, 11, 5), 2), (date(2026, 11, 20), 4)):
            for i in range(n):
                conn.execute("insert into c360.rfm_history values (%s, %s, null, 1, 1, 10, 1, 1, 1, '111', 'Lost')",
                             (as_of, f"C{i}"))
                conn.execute("insert into c360.segment_membership_history values (%s, 'Champions', %s, 'rfm')",
                             (as_of, f"C{i}"))
        # batch tables: a left-behind old one, a recent one, an old interval being backfilled right now
        for table in ("customer_daily__20261101t0000", "customer_daily__20261120t0000",
                      "orders_every_15_minutes__20261101t0000"):
            conn.execute(f"create table staging.{table} as select * from c360.rfm_history")  # noqa: S608 - constant
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.autocommit = True
        conn.execute("analyze staging.orders_every_15_minutes__20261101t0000")
    return run_succeeds(lifecycle_dags.build_housekeeping_dag(registry), RUN_END)


def _exists(uri: str) -> bool:
    return lake.local_path(uri).exists()


def test_lake_partitions_past_retention_go_and_recent_ones_stay(purged):
    for layer in ("raw", "stage", "quarantine"):
        assert not _exists(lake.uri(layer, "customer", OLD)), layer  # 11 days > 3
        assert _exists(lake.uri(layer, "customer", RECENT)), layer
        assert _exists(lake.uri(layer, "orders", OLD)), layer  # 11 days < 90
    assert _exists(lake.uri("raw", "product", datetime(2020, 1, 6, 2, tzinfo=UTC)))  # no retention: forever
    landing = lake.local_path(settings.landing_uri()) / "web_analytics"
    assert not (landing / "dt=2026-11-17").exists()  # its only hour is 4 days old > 2: the day folder goes too
    assert (landing / "dt=2026-11-20" / "hr=23" / "ga.json").exists()
    assert (landing / "visitor_map" / "visitor_map.csv").exists()  # not a landing hour
    assert not _exists(lake.uri("analytics", "customer_360", OLD))  # as of 11 days ago > 5
    assert _exists(lake.uri("analytics", "customer_360", RECENT + timedelta(days=1)))


def test_history_partitions_past_retention_go(purged):
    # rfm keeps 10 days before 2026-11-21 05:30: the as-of dates before 2026-11-11 go
    assert wh("select as_of_date, count(*) from c360.rfm_history group by 1 order by 1") == [(date(2026, 11, 20), 4)]
    # segment membership keeps 730 days: every partition stays
    assert wh("select count(distinct as_of_date) from c360.segment_membership_history")[0][0] == 3


def test_stale_batch_tables_go(purged):
    left = {t for (t,) in wh("select table_name from information_schema.tables where table_schema = 'staging'")}
    assert left == {"customer_daily__20261120t0000", "orders_every_15_minutes__20261101t0000"}


def test_every_drop_is_audited_with_its_counts(purged):
    entries = {s: (rows, detail) for s, rows, detail in wh(
        "select subject, rows, detail from governance.audit_log where action = 'retention_purge' and dag_run_id = %s",
        (purged.run_id,))}
    assert set(entries) == {"lake:raw/customer", "lake:stage/customer", "lake:quarantine/customer",
                            "lake:landing/web_analytics", "lake:analytics/customer_360", "c360.rfm_history",
                            "staging.customer_daily__20261101t0000"}
    rows, detail = entries["lake:stage/customer"]
    assert rows == 4 and detail["partitions"] == ["2026-11-10T0000"] and detail["files"] == 3
    assert detail["dataset"] == "customer" and detail["retention_days"] == 3
    assert entries["lake:landing/web_analytics"][0] == 3
    assert entries["lake:analytics/customer_360"][0] == 6 and entries["lake:analytics/customer_360"][1]["files"] == 3
    rows, detail = entries["c360.rfm_history"]
    assert rows == 5 and detail["partitions"] == ["2026-11-01", "2026-11-05"] and detail["cutoff"] == "2026-11-11"
    assert entries["staging.customer_daily__20261101t0000"][0] == 9


def test_a_rerun_finds_nothing_more_to_drop(purged):
    dr = run_succeeds(lifecycle_dags.build_housekeeping_dag(_short_registry()), RUN_END)
    assert wh("select count(*) from governance.audit_log where action = 'retention_purge' and dag_run_id = %s",
               (dr.run_id,)) == [(0,)]


def test_audit_entries_cannot_be_changed_by_any_role(purged):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("drop role if exists c360_retention_test_other; create role c360_retention_test_other")
        conn.execute("grant usage on schema governance to c360_retention_test_other")
    try:
        for statement in ("update governance.audit_log set rows = 0 where action = 'retention_purge'",
                          "delete from governance.audit_log where action = 'retention_purge'",
                          "truncate governance.audit_log"):
            with pg.connect(settings.WAREHOUSE_CONN_ID) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("set role c360_retention_test_other")
                conn.execute(statement)
            with pg.connect(settings.WAREHOUSE_CONN_ID) as conn, pytest.raises(
                    psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)  # the owner: the append-only trigger refuses
    finally:
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            conn.execute("revoke all on schema governance from c360_retention_test_other; "
                         "drop role c360_retention_test_other")
    assert wh("select count(*) from governance.audit_log where action = 'retention_purge'")[0][0] >= 7


def test_the_real_registry_keeps_this_data(purged):
    """With the registry's own retention (90 days for customer) nothing above is old enough to go."""
    reg = load_registry()
    assert reg["customer"].retention_days == 90 and reg["product"].retention_days is None
