"""The Customer 360 Spark job against an independent computation in DuckDB (plain SQL + the segment rules
applied in Python), on hand-made edge cases and on generated data."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from c360.segments import load_segments

job = pytest.importorskip("customer360_job")

AS_OF = datetime(2026, 11, 21)
SEG = load_segments()
EXCLUDED = list(SEG.rfm.excluded_statuses)

ORDER_SCHEMA = pa.schema([("order_id", pa.string()), ("customer_id", pa.string()), ("order_date", pa.timestamp("us")),
                          ("order_status", pa.string()), ("total_amount", pa.float64())])


def _edge_orders() -> pa.Table:
    d = AS_OF
    rows = [
        # one-order customers with tied recency, frequency and monetary (quintile boundary ties)
        *[(f"O1{i}", f"C0{i}", d - timedelta(days=3), "delivered", 50.0) for i in range(6)],
        # same-day repeat orders
        ("O20", "C10", d - timedelta(hours=5), "delivered", 10.0),
        ("O21", "C10", d - timedelta(hours=3), "shipped", 15.5),
        # zero and negative amounts (a refund order)
        ("O30", "C11", d - timedelta(days=40), "delivered", 0.0),
        ("O31", "C12", d - timedelta(days=41), "returned", 120.0),
        ("O32", "C12", d - timedelta(days=20), "delivered", -120.0),
        # on the as-of boundary: excluded; one microsecond before: included (recency 1)
        ("O40", "C13", d, "delivered", 999.0),
        ("O41", "C14", d - timedelta(microseconds=1), "delivered", 33.3),
        # window boundary: exactly 365 days before is in, a microsecond earlier is out
        ("O50", "C15", d - timedelta(days=365), "delivered", 70.0),
        ("O51", "C16", d - timedelta(days=365, microseconds=1), "delivered", 70.0),
        # cancelled orders do not count; an order without customer is nobody's
        ("O60", "C17", d - timedelta(days=5), "cancelled", 500.0),
        ("O61", None, d - timedelta(days=5), "delivered", 80.0),
        # a frequent big spender
        *[(f"O7{i}", "C18", d - timedelta(days=10 * i + 2), "delivered", 300.0 + i) for i in range(6)],
        # status unknown (NULL) counts as a purchase
        ("O80", "C19", d - timedelta(days=100), None, 25.0),
    ]
    return pa.Table.from_pylist([dict(zip(ORDER_SCHEMA.names, r, strict=True)) for r in rows], schema=ORDER_SCHEMA)


def _duckdb_rfm(orders: pa.Table, as_of: datetime, window_days: int) -> dict[str, tuple]:
    con = duckdb.connect()
    con.register("orders", orders)
    rows = con.execute("""
        with p as (
            select customer_id, order_id, order_date, cast(total_amount as decimal(18, 2)) as amount
            from orders
            where order_date < $as_of and order_date >= $as_of - to_days($window)
              and (order_status is null or order_status not in (select unnest($excluded)))
              and customer_id is not null
        ), c as (
            select customer_id, date_diff('day', cast(max(order_date) as date), cast($as_of as date)) as recency_days,
                   count(distinct order_id) as frequency, sum(amount) as monetary
            from p group by customer_id
        ), n as (select count(*) as n from c)
        select customer_id, recency_days, frequency, monetary,
               1 + floor(5 * (rank() over (order by -recency_days) - 1) / n) as r,
               1 + floor(5 * (rank() over (order by frequency) - 1) / n) as f,
               1 + floor(5 * (rank() over (order by monetary) - 1) / n) as m
        from c, n
    """, {"as_of": as_of, "window": window_days, "excluded": EXCLUDED}).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), Decimal(r[3]), int(r[4]), int(r[5]), int(r[6]),
                   SEG.rfm_segment(int(r[4]), int(r[5]), int(r[6]))) for r in rows}


def _spark_rfm(spark, orders: pa.Table, as_of: datetime, window_days: int | None = None) -> dict[str, tuple]:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(orders.to_pandas()).withColumn("order_date", F.col("order_date").cast("timestamp_ntz"))
    settings = {**SEG.spec()["rfm"], **({"window_days": window_days} if window_days else {})}
    out = job.rfm(df, as_of, settings, SEG.spec()["rfm_segments"]).collect()
    return {r.customer_id: (r.recency_days, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score, r.rfm_segment)
            for r in out}


def test_rfm_edge_cases_match_duckdb(spark):
    orders = _edge_orders()
    got, expected = _spark_rfm(spark, orders, AS_OF), _duckdb_rfm(orders, AS_OF, SEG.rfm.window_days)
    assert got == expected
    # the edge cases behave as documented
    assert "C13" not in got and got["C14"][0] == 1            # as-of boundary
    assert "C15" in got and "C16" not in got                  # window boundary
    assert "C17" not in got and None not in got               # cancelled; no customer
    assert got["C10"][:2] == (1, 2)                           # same-day repeat: 2 orders, recency 1 day
    assert got["C12"][2] == Decimal("0.00") and got["C11"][2] == Decimal("0.00")  # refund cancels; zero
    ties = {got[f"C0{i}"] for i in range(6)}
    assert len(ties) == 1                                     # equal values, equal scores
    assert got["C18"][3:6] == (4, 5, 5) and got["C18"][6] == "Loyal"


def test_rfm_on_generated_data_matches_duckdb(spark):
    from c360 import generator

    data = generator.generate(generator.Scale(customers=3_000, days=60, orders_per_day=300, sessions_per_hour=1,
                                              ga_days=1))
    orders = data.tables["orders"].select(ORDER_SCHEMA.names).cast(ORDER_SCHEMA)
    as_of = datetime(2026, 11, 1)  # inside the history: later orders must be ignored
    expected = _duckdb_rfm(orders, as_of, 30)
    assert _spark_rfm(spark, orders, as_of, 30) == expected and len(expected) > 1000
    assert {v[6] for v in expected.values()} >= {"Champions", "Hibernating", "Loyal", "At Risk"}


def test_every_score_combination_has_a_segment():
    import itertools

    assert all(SEG.rfm_segment(*c) for c in itertools.product(range(1, 6), repeat=3))


def test_identity_resolution_merges_shared_email_phone_and_visitor(spark):
    customers = spark.createDataFrame([
        ("C1", "Ann@Mail.example ", "+1-555-0000001"),
        ("C2", "ann@mail.example", "+1-555-0000099"),   # same email as C1 after normalising
        ("C3", "bob@mail.example", "(555) 0000099"),     # same phone as C2 → C1's person too
        ("C4", "cat@mail.example", "+1-555-0000004"),
        ("C5", None, None),                               # linked to C4 by a shared web visitor
        ("C6", "dan@mail.example", "12"),                 # too short to be a phone
    ], "customer_id string, email_address string, phone_number string")
    vmap = spark.createDataFrame([("V1", "C4"), ("V1", "C5"), ("V2", "C6")], "fullVisitorId string, customer_id string")
    got = {r.customer_id: r.profile_id for r in job.resolve_identities(customers, vmap).collect()}
    assert got == {"C1": "C1", "C2": "C1", "C3": "C1", "C4": "C4", "C5": "C4", "C6": "C6"}


def test_segments_and_enriched_orders_match_duckdb(spark):
    from pyspark.sql import functions as F

    from c360 import generator

    data = generator.generate(generator.Scale(customers=800, days=200, orders_per_day=60, sessions_per_hour=1,
                                              ga_days=1))
    t = data.tables
    as_of = datetime(2026, 11, 15)

    def sdf(name):
        df = spark.createDataFrame(t[name].to_pandas())
        for f in t[name].schema:
            if pa.types.is_timestamp(f.type):
                df = df.withColumn(f.name, F.col(f.name).cast("timestamp_ntz"))
        return df

    web = spark.createDataFrame([
        ("S1", t["customer"]["customer_id"][0].as_py(), as_of - timedelta(days=2), "add_to_cart"),
        ("S2", t["customer"]["customer_id"][0].as_py(), as_of - timedelta(days=3), "add_to_cart"),
        ("S3", t["customer"]["customer_id"][1].as_py(), as_of - timedelta(days=3), "add_to_cart"),
        ("S3", t["customer"]["customer_id"][1].as_py(), as_of - timedelta(days=3), "order_placed"),
    ], "session_id string, entity_id string, activity_ts timestamp_ntz, event_action string")
    spec = SEG.spec()
    orders, items, product, brand, txn = (sdf(n) for n in ("orders", "order_line_item", "product", "brand", "transactions"))
    rfm_rows = job.rfm(orders, as_of, spec["rfm"], spec["rfm_segments"])
    metrics = job.audience_metrics(orders, items, product, web, as_of, spec["metrics"], EXCLUDED)
    got = {(r.segment_name, r.customer_id) for r in job.segment_membership(metrics, spec["audiences"], rfm_rows, as_of).collect()}

    con = duckdb.connect()
    for name in ("orders", "order_line_item", "product", "brand", "transactions"):
        con.register(name, t[name])
    con.register("web", web.toPandas())
    params = {"as_of": as_of}

    def purchases(days):
        return (f"select * from orders where order_date < $as_of and order_date >= $as_of - to_days({days}) "
                f"and coalesce(order_status, '') <> 'cancelled' and customer_id is not null")

    m = SEG.metrics
    sql_metric = {
        "monetary_365d": f"select customer_id, sum(cast(total_amount as decimal(18,2))) v from ({purchases(m['monetary_365d'].window_days)}) group by 1",
        "orders_90d": f"select customer_id, count(distinct order_id) v from ({purchases(m['orders_90d'].window_days)}) group by 1",
        "baby_items_180d": f"""select o.customer_id, sum(coalesce(i.qty, 0)) v from ({purchases(m['baby_items_180d'].window_days)}) o
                              join order_line_item i using (order_id) join product p using (product_id)
                              where p.product_category in ('Baby') or p.product_subcategory in ('Baby') group by 1""",
        "abandoned_carts_30d": """select entity_id as customer_id, count(*) v from (
                                    select entity_id, session_id from web
                                    where activity_ts < $as_of and activity_ts >= $as_of - to_days(30)
                                    group by 1, 2 having bool_or(event_action = 'add_to_cart')
                                    and not bool_or(event_action = 'order_placed')) group by 1""",
    }
    expected = set()
    for a in SEG.audiences:
        for (cid, v) in con.execute(sql_metric[a.metric], params).fetchall():
            if float(v) >= a.at_least:
                expected.add((a.name, cid))
    expected |= {(v[6], cid) for cid, v in _duckdb_rfm(t["orders"].select(ORDER_SCHEMA.names).cast(ORDER_SCHEMA),
                                                     as_of, SEG.rfm.window_days).items()}
    assert got == expected
    names = {s for s, _ in got}
    assert {"High Spending Customers", "Frequent Buyers", "Frequent Cart Abandoner"} <= names

    enriched = job.orders_enriched(orders, items, product, brand, txn, as_of)
    got_e = sorted((r.order_id, r.order_li_id, r.brand_name, r.line_amount, r.paid_amount, r.refunded_amount)
                   for r in enriched.collect())
    exp_e = sorted(tuple(r) for r in con.execute("""
        with pay as (select order_id,
                            sum(case when amount > 0 then cast(amount as decimal(18,2)) else 0 end) paid,
                            sum(case when amount < 0 then -cast(amount as decimal(18,2)) else 0 end) refunded
                     from transactions group by 1)
        select o.order_id, i.order_li_id, b.brand_name,
               cast(i.qty * cast(p.sale_price as decimal(18,2)) as decimal(18,2)),
               coalesce(pay.paid, 0), coalesce(pay.refunded, 0)
        from orders o left join order_line_item i using (order_id) left join product p using (product_id)
        left join brand b using (brand_id) left join pay using (order_id)
        where o.order_date < $as_of""", params).fetchall())
    assert got_e == exp_e and len(got_e) > 1000


@pytest.mark.parametrize("partitions", [1, 7])
def test_rank_ascending_equals_sql_rank_across_partitions(spark, partitions):
    import random

    rng = random.Random(5)
    values = [rng.choice([0, 1, 1, 2, 3, 3, 3, 10, -4]) + rng.choice([0, 0, 0.5]) for _ in range(2_000)]
    df = spark.createDataFrame([(i, float(v)) for i, v in enumerate(values)], "id int, v double")
    got = {r.id: r.rank for r in job.rank_ascending(df, "v", "rank", partitions).collect()}
    expected = {i: 1 + sum(w < v for w in values) for i, v in enumerate(values)}
    assert got == expected


def test_quintile_scores_same_by_order_statistics_and_by_distributed_ranks(spark, monkeypatch):
    import random

    rng = random.Random(11)
    rows = [(i, rng.choice([1, 2, 2, 3, 7, 7, 7, 30]), Decimal(rng.choice(["0.00", "-5.50", "10.00", "10.01", "99.99"])))
            for i in range(3_001)]
    df = spark.createDataFrame(rows, "id int, f int, m decimal(18,2)")
    cols = {"f_score": "f", "m_score": "m"}
    by_stats = {r.id: (r.f_score, r.m_score) for r in job.quintile_scores(df, cols).collect()}
    monkeypatch.setattr(job, "COLLECT_LIMIT", 0)
    by_rank = {r.id: (r.f_score, r.m_score) for r in job.quintile_scores(df, cols).collect()}
    n = len(rows)
    expected = {i: tuple(1 + (5 * sum(w[k] < v[k] for w in rows)) // n for k in (1, 2)) for i, *_ in rows
                for v in [rows[i]]}
    assert by_stats == by_rank == expected
