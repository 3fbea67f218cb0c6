"""Unit tests of the GA flattening job's DataFrame functions on the shared local Spark session."""

from __future__ import annotations

import json

import pytest

web = pytest.importorskip("web_analytics_job")

VISITOR_MAP = [("V1", "C1"), ("V2", "C2"), ("V2", "C9")]  # V2 mapped twice: the smallest id wins


def _session(visitor="V1", start=1763600000, hits=None, **extra):
    prod = {"productSKU": "P1", "v2ProductName": "Shoe", "v2ProductCategory": "Footwear/Running",
            "productBrand": "Acme", "productPrice": 25_500_000, "productQuantity": 1}
    hits = hits if hits is not None else [
        {"hitNumber": 1, "time": 0, "type": "PAGE", "eCommerceAction": {"action_type": "2"}, "product": [prod]},
        {"hitNumber": 2, "time": 1000, "type": "EVENT", "eCommerceAction": {"action_type": "0"},
         "eventInfo": {"eventAction": "add_to_wishlist"}, "product": [prod]},
        {"hitNumber": 3, "time": 5000, "type": "PAGE", "eCommerceAction": {"action_type": "2"}, "product": [prod]},
        {"hitNumber": 4, "time": 9000, "type": "EVENT", "eCommerceAction": {"action_type": "3"},
         "product": [{**prod, "productQuantity": 2}]},
        {"hitNumber": 5, "time": 12000, "type": "PAGE", "eCommerceAction": {"action_type": "0"}},  # no lens hit
        {"hitNumber": 6, "time": 20000, "type": "PAGE", "eCommerceAction": {"action_type": "6"},
         "product": [{**prod, "productQuantity": 2}, {**prod, "productSKU": "P2"}],
         "transaction": {"transactionId": "T1", "transactionRevenue": 76_500_000}},
    ]
    return json.dumps({"fullVisitorId": visitor, "visitId": start, "visitStartTime": start,
                       "channelGrouping": "Organic Search", "trafficSource": {"source": "google"},
                       "hits": hits, **extra})


def _lines(spark, lines):
    from pyspark.sql import functions as F

    return spark.createDataFrame([(x,) for x in lines], "value string").withColumn(web.SOURCE_FILE, F.lit("f.json"))


def _reasons(spark, lines):
    parsed = web.parse(_lines(spark, lines))
    return [r[web.REASON] for r in parsed.select(web.REASON).collect()]


def test_good_session_flattens_into_lens_activities(spark):
    parsed = web.parse(_lines(spark, [_session()]))
    vm = spark.createDataFrame(VISITOR_MAP, "fullVisitorId string, customer_id string")
    rows = web.flatten(parsed, vm.groupBy("fullVisitorId").agg({"customer_id": "min"})
                       .withColumnRenamed("min(customer_id)", "customer_id")).collect()
    by = sorted((r.activity_ts, r.event_action, r.product_sku) for r in rows)
    assert [(a, p) for _, a, p in by] == [
        ("product_view", "P1"), ("add_to_favourite", "P1"), ("product_view", "P1"), ("add_to_cart", "P1"),
        ("order_placed", "P1"), ("order_placed", "P2"),
    ]
    views = sorted((r for r in rows if r.event_action == "product_view"), key=lambda r: r.activity_ts)
    assert [v.occurence for v in views] == [1, 2]
    assert views[0].activity_repeated_at is None and views[1].activity_repeated_at == views[0].activity_ts
    cart = next(r for r in rows if r.event_action == "add_to_cart")
    assert (cart.product_price, cart.quantity, cart.order_value) == (25.5, 2, 51.0)
    assert (cart.category_name, cart.subcategory_name, cart.brand_name) == ("Footwear", "Running", "Acme")
    order = [r for r in rows if r.event_action == "order_placed"]
    assert {r.transaction_id for r in order} == {"T1"} and cart.transaction_id is None
    assert {r.entity_id for r in rows} == {"C1"}
    assert {r.session_id for r in rows} == {"V1-1763600000"}
    assert len({r.activity_uuid for r in rows}) == 6
    assert str(views[0].visit_start_ts) == "2025-11-20 00:53:20" and views[0].activity_year == 2025


def test_activity_ids_are_stable_across_runs(spark):
    def ids():
        vm = spark.createDataFrame(VISITOR_MAP[:1], "fullVisitorId string, customer_id string")
        return sorted(r.activity_uuid for r in web.flatten(web.parse(_lines(spark, [_session()])), vm).collect())

    first, second = ids(), ids()
    assert first == second and len(set(first)) == 6


def test_anonymous_visitor_has_no_entity(spark):
    parsed = web.parse(_lines(spark, [_session(visitor="A123")]))
    rows = web.flatten(parsed, spark.createDataFrame(VISITOR_MAP[:1], "fullVisitorId string, customer_id string"))
    assert {r.entity_id for r in rows.collect()} == {None}


@pytest.mark.parametrize(("line", "reason"), [
    (_session()[:40], "malformed JSON"),
    ("not json at all", "malformed JSON"),
    (_session(hits={"hitNumber": 1}), "JSON does not match the GA export shape"),
    (_session(start="yesterday"), "visitStartTime: 'yesterday' is not a valid bigint"),
    (json.dumps({"visitId": 1, "visitStartTime": 1}), "fullVisitorId: required value is missing"),
    (_session(hits=[{"hitNumber": 1, "time": "soon", "eCommerceAction": {"action_type": "2"}, "product": []}]),
     "hits.time: 'soon' is not a valid bigint"),
    (_session(hits=[{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "2"},
                     "product": [{"productSKU": "P", "productPrice": "12,50", "productQuantity": 1}]}]),
     "hits.product.productPrice: '12,50' is not a valid bigint"),
    (_session(hits=[{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "3"},
                     "product": [{"productSKU": "P", "productPrice": 1, "productQuantity": "two"}]}]),
     "hits.product.productQuantity: 'two' is not a valid int"),
])
def test_bad_lines_are_quarantined_with_a_reason(spark, line, reason):
    assert _reasons(spark, [line]) == [reason]


def test_good_lines_have_no_reason(spark):
    assert _reasons(spark, [_session(), _session(visitor="V2", hits=[])]) == [None, None]


def test_run_writes_stage_quarantine_and_a_reconciling_manifest(spark, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_text("\n".join([_session(), _session()[:50], "", _session(visitor="V2")]) + "\n")
    (tmp_path / "vm.csv").write_text("fullVisitorId,customer_id\n" + "\n".join(f"{v},{c}" for v, c in VISITOR_MAP))
    stage, quarantine = tmp_path / "stage", tmp_path / "quarantine"
    manifest = web.run(spark, str(raw), str(tmp_path / "vm.csv"), str(stage), str(quarantine))
    assert manifest == {"lines": 3, "parsed_lines": 2, "quarantined_lines": 1, "activities": 12}
    assert spark.read.parquet(str(stage)).count() == 12
    q = spark.read.parquet(str(quarantine)).collect()
    assert [(r[web.REASON], r[web.SOURCE_FILE]) for r in q] == [("malformed JSON", "a.json")]
    assert json.loads(spark.read.text(f"{stage}/{web.MANIFEST}").first().value) == manifest
    entity = {r.entity_id for r in spark.read.parquet(str(stage)).collect()}
    assert entity == {"C1", "C2"}


def test_job_columns_match_the_registry(spark):
    from c360.registry import load_registry

    produced = web.flatten(spark.createDataFrame([], f"s {web.SESSION}"),
                           spark.createDataFrame([], "fullVisitorId string, customer_id string")).columns
    assert produced == load_registry()["web_analytics"].column_names
