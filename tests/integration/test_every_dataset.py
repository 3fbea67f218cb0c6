"""Every DAG, end to end with dag.test() on real PostgreSQL, Spark and Soda: interval semantics.

For each dataset one interval that holds source rows is run twice: the published table is identical
(checksum) and has no duplicate business key. Late-arriving orders are picked up by rerunning their
interval. Malformed GA lines and source rows that violate the declared types are quarantined with a
reason while the run succeeds, and raw = stage + quarantine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow.dataset as pads
import pytest
from helpers import key_checksum, run_succeeds, wh

from c360 import generator, lake, pg, settings
from c360.registry import load_registry

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=1_000, days=14, orders_per_day=2_000, sessions_per_hour=20, ga_days=1)
PUBLISHED_TABLES_EMPTY = True  # the `sources` fixture: every run below is an incremental upsert
GA_HOUR = datetime(2026, 11, 20, 12, tzinfo=UTC)  # a landing hour the generator wrote


def _logical_date(dag, ds) -> datetime:
    """The end of the interval that holds the latest source row (so every run has rows to publish)."""
    from croniter import croniter

    if dag.dag_id.endswith("_full_refresh"):
        return croniter(ds.cadence.full_refresh_schedule, SCALE.end_ts).get_next(datetime).replace(tzinfo=UTC)
    if ds.source.system == "ga_export":
        return GA_HOUR + timedelta(hours=1)
    with pg.connect(ds.source.conn_id) as conn:
        from psycopg import sql

        (latest,) = conn.execute(sql.SQL("select max({w}) from {t} where {w} < %s").format(
            w=sql.Identifier(ds.source.watermark), t=sql.Identifier(ds.source.table)), (SCALE.end_ts,)).fetchone()
    return croniter(ds.cadence.schedule, latest).get_next(datetime).replace(tzinfo=UTC)


def _run(dag, logical: datetime):
    # the DAG's own mode, stated: the session's DagBag is shared with modules that trigger full refreshes
    return run_succeeds(dag, logical, full_refresh=dag.dag_id.endswith("_full_refresh"))


# the datasets' own DAGs (and full-refresh DAGs), from the registry; derived products have their own rerun and
# backfill test: test_customer360.py
DAGS = sorted([(ds.dag_id, ds.name) for ds in load_registry().active()]
              + [(ds.full_refresh_dag_id, ds.name) for ds in load_registry().active() if ds.full_refresh_dag_id])


@pytest.mark.parametrize("dag_id, dataset", DAGS)
def test_rerunning_an_interval_publishes_identical_rows(sources, dagbag, dag_id, dataset):
    dag, ds = dagbag.dags[dag_id], load_registry()[dataset]
    logical = _logical_date(dag, ds)
    first = _run(dag, logical)
    rows, keys, checksum = key_checksum(ds)
    (written,) = wh("select rows_published from meta.publish_log where dag_run_id=%s and dataset=%s",
                    (first.run_id, ds.name))[0]
    assert written > 0 and rows >= written, f"{dag_id}: interval ending {logical} published nothing"
    assert rows == keys, f"{dag_id}: duplicate business keys"
    second = _run(dag, logical)
    assert key_checksum(ds) == (rows, keys, checksum)
    mode = "full" if dag_id.endswith("_full_refresh") else "incremental"
    log = wh("select dag_run_id, mode from meta.publish_log where dataset=%s and dag_run_id in (%s, %s)",
             (ds.name, first.run_id, second.run_id))
    assert {m for _, m in log} == {mode}


def test_monthly_full_refresh_drops_brands_deleted_at_the_source(sources, dagbag):
    ds = load_registry()["brand"]
    dag = dagbag.dags[ds.full_refresh_dag_id]
    logical = _logical_date(dag, ds)
    _run(dag, logical)
    with pg.connect(settings.REDSHIFT_CONN_ID) as conn:
        (gone,) = conn.execute("delete from brand where brand_id = (select min(brand_id) from brand) "
                               "returning brand_id").fetchone()
        (left,) = conn.execute("select count(distinct brand_id) from brand").fetchone()
    assert wh("select count(*) from c360.brand where brand_id = %s", (gone,))[0][0] == 1
    _run(dag, logical)
    rows, keys, _ = key_checksum(ds)
    assert wh("select count(*) from c360.brand where brand_id = %s", (gone,))[0][0] == 0
    assert rows == keys == left


def test_late_orders_are_picked_up_by_rerunning_their_interval(sources, dagbag):
    ds = load_registry()["orders"]
    dag = dagbag.dags[ds.dag_id]
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        (late_id, late_date), = conn.execute(
            "select order_id, order_date from late.orders order by order_date desc limit 1").fetchall()
    from croniter import croniter

    logical = croniter(ds.cadence.schedule, late_date).get_next(datetime).replace(tzinfo=UTC)
    _run(dag, logical)
    assert wh("select count(*) from c360.orders where order_id=%s", (late_id,))[0][0] == 0
    before_rows, _, _ = key_checksum(ds)
    moved = generator.deliver_late()
    assert moved["orders"] > 0
    _run(dag, logical)
    rows, keys, _ = key_checksum(ds)
    assert wh("select count(*) from c360.orders where order_id=%s", (late_id,))[0][0] == 1
    assert rows == keys and rows > before_rows


def _bad_ga_lines() -> list[str]:
    good = {"fullVisitorId": "V0000000001", "visitId": 1, "visitStartTime": int(GA_HOUR.timestamp()) + 60,
            "channelGrouping": "Direct", "trafficSource": {"source": "(direct)"},
            "hits": [{"hitNumber": 1, "time": 0, "type": "PAGE", "eCommerceAction": {"action_type": "2"},
                      "product": [{"productSKU": "P1", "productPrice": 1_000_000, "productQuantity": 1}]}]}
    bad_price = {**good, "hits": [{**good["hits"][0], "product": [{"productSKU": "P1", "productPrice": "oops"}]}]}
    return [
        json.dumps(good)[:70],                                              # cut short
        json.dumps({**good, "visitStartTime": "noon"}),                     # mistyped session field
        json.dumps(bad_price),                                              # mistyped product price
        json.dumps({**good, "hits": "none"}),                               # wrong shape
    ]


def test_malformed_ga_lines_are_quarantined_and_good_ones_published(sources, dagbag):
    ds = load_registry()["web_analytics"]
    hour = lake.path(f"{settings.landing_uri()}/web_analytics/dt={GA_HOUR:%Y-%m-%d}/hr={GA_HOUR:%H}")
    (landing,) = list(hour.glob("*.json"))
    good_lines = [x for x in landing.read_text().splitlines() if x.strip()]
    bad = _bad_ga_lines()
    landing.write_text("\n".join(good_lines[:5] + bad + good_lines[5:]) + "\n")
    dr = _run(dagbag.dags[ds.dag_id], GA_HOUR + timedelta(hours=1))

    from c360 import steps

    part = lake.uri("stage", ds.name, GA_HOUR)
    manifest = steps.read_manifest(part)
    quarantine = pads.dataset(str(lake.local_path(lake.uri("quarantine", ds.name, GA_HOUR))),
                              format="parquet").to_table().to_pylist()
    reasons = {q["value"]: q["_reject_reason"] for q in quarantine}
    for line in bad:
        assert reasons[line], line
    assert reasons[bad[0]] == "malformed JSON"
    assert reasons[bad[1]] == "visitStartTime: 'noon' is not a valid bigint"
    assert reasons[bad[2]] == "hits.product.productPrice: 'oops' is not a valid bigint"
    # the generator's own cut-short lines (0.2 %) are quarantined too; nothing else is
    assert all(r == "malformed JSON" for v, r in reasons.items() if v not in bad)
    total = len(good_lines) + len(bad)
    assert manifest["lines"] == total == manifest["parsed_lines"] + len(quarantine)
    assert manifest["activities"] > 0
    (in_hour,) = wh("select count(*) from c360.web_activity where visit_start_ts >= %s and visit_start_ts < %s",
                    (GA_HOUR.replace(tzinfo=None), (GA_HOUR + timedelta(hours=1)).replace(tzinfo=None)))[0]
    assert in_hour == manifest["activities"]
    assert wh("select rows_in_batch from meta.publish_log where dag_run_id=%s and dataset='web_analytics'",
              (dr.run_id,))[0][0] == manifest["activities"]

    # what on-call sees with `make quarantine DATASET=web_analytics [INTERVAL=...]`
    from c360 import runs

    key = lake.interval_key(GA_HOUR)
    malformed = sum(r == "malformed JSON" for r in reasons.values())
    assert f"interval={key}  {malformed:>7}  malformed JSON" in runs.quarantine_report("web_analytics")
    listing = runs.quarantine_report("web_analytics", key)
    assert "hits.product.productPrice: 'oops' is not a valid bigint" in listing and bad[1] in listing


def test_source_rows_violating_types_are_quarantined_and_the_rest_published(sources, dagbag):
    """A loosely typed source column (varchar amounts) with values that are not numbers."""
    ds = load_registry()["transactions"]
    dag = dagbag.dags[ds.dag_id]
    logical = _logical_date(dag, ds)
    start = (logical - timedelta(days=1)).replace(tzinfo=None)
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        conn.execute("alter table transactions alter column amount type varchar")
        bad_ids = [r[0] for r in conn.execute(
            "update transactions set amount = '12,50 EUR' where transaction_id in (select transaction_id from "
            "transactions where transaction_ts >= %s and transaction_ts < %s order by transaction_id limit 3) "
            "returning transaction_id", (start, logical.replace(tzinfo=None))).fetchall()]
        (in_interval,) = conn.execute("select count(*) from transactions where transaction_ts >= %s "
                                      "and transaction_ts < %s", (start, logical.replace(tzinfo=None))).fetchone()
    assert len(bad_ids) == 3
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("delete from c360.transactions")  # the published table starts empty for this interval
    dr = _run(dag, logical)
    quarantine = pads.dataset(str(lake.local_path(lake.uri("quarantine", ds.name, start.replace(tzinfo=UTC)))),
                              format="parquet").to_table().to_pylist()
    by_id = {q["transaction_id"]: q["_reject_reason"] for q in quarantine}
    for tid in bad_ids:
        assert by_id[tid] == "amount: '12,50 EUR' is not a valid double"
    published = {r[0] for r in wh("select transaction_id from c360.transactions")}
    assert not published & set(bad_ids)
    (staged,) = wh("select rows_in_batch from meta.publish_log where dag_run_id=%s and dataset='transactions'",
                   (dr.run_id,))[0]
    assert staged + len(quarantine) == in_interval and len(published) == staged
