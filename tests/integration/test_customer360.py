"""The customer_360_daily DAG end to end with dag.test() on real PostgreSQL, Spark and Soda.

The input datasets are published directly from generated data (their own DAGs are covered by
test_every_dataset), so this module exercises the derived product: waiting for inputs, export, the Spark job,
the gate, the one-transaction publish, history by as-of date, and the lens views. RFM is checked against an
independent computation in PostgreSQL SQL over the same published orders.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import run_succeeds, wh

from c360 import generator, pg, settings, warehouse
from c360.registry import cadence_label, load_registry

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=3_000, days=90, orders_per_day=200, sessions_per_hour=1, ga_days=1,
                        defects=False)
AS_OF = datetime(2026, 11, 21, tzinfo=UTC)
DERIVED = load_registry().derived["customer_360"]
DAG_ID = DERIVED.dag_id
OUTPUTS = tuple(o.table for o in DERIVED.outputs)


def _checksum(table: str, where: str = "true", params=None) -> tuple:
    return wh(f"select count(*), md5(string_agg(t::text, '|' order by t::text)) from {table} t where {where}",
              params)[0]


def _publish_inputs(data, interval_end: datetime, web: bool = True) -> None:
    """Load generated tables as the published datasets (on a fresh warehouse: the `fresh_warehouse` fixture),
    and log them as published up to ``interval_end`` (without ``web``, web analytics is never published: no
    c360.web_activity)."""

    registry = load_registry()
    inputs = [n for n in DERIVED.inputs if web or n != "web_analytics"]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for name in inputs:
            ds = registry[name]
            warehouse.ensure_table(conn, ds)
            if name in data.tables:
                warehouse.copy_arrow(conn, ds.output.table, data.tables[name].select(ds.column_names))
        # a few web sessions: customer 1 abandons two carts, customer 2 buys
        c1, c2 = data.tables["customer"]["customer_id"][0].as_py(), data.tables["customer"]["customer_id"][1].as_py()
        day = (interval_end - timedelta(days=2)).replace(tzinfo=None)
        rows = [(f"a{i}", f"S{i}", day, c, day + timedelta(minutes=i), "P1", action, "T1" if action == "order_placed" else None)
                for i, (c, action) in enumerate([(c1, "product_view"), (c1, "add_to_cart"), (c1, "add_to_cart"),
                                                 (c2, "add_to_cart"), (c2, "order_placed")])]
        rows[2] = ("a2", "S9", *rows[2][2:])  # c1's second cart in another session
        for r in rows if web else []:
            conn.execute("insert into c360.web_activity (activity_uuid, session_id, visit_start_ts, entity_id, "
                         "activity_ts, product_sku, event_action, transaction_id, activity_year, activity_month, "
                         "occurence, traffic_channel, quantity, order_value) "
                         "values (%s, %s, %s, %s, %s, %s, %s, %s, 2026, 11, 1, 'Email', 1, 10)", r)
        conn.execute(warehouse.sql_file("warehouse/bootstrap.sql"))
        for name in inputs:
            conn.execute(warehouse.sql_file("warehouse/publish_log.sql"), {
                "dataset": name, "table": registry[name].output.table, "start": interval_end - timedelta(hours=1),
                "end": interval_end, "run_id": "seeded", "mode": "full", "batch_rows": 0, "rows": 0})


def _run(dagbag, logical: datetime):
    return run_succeeds(dagbag.dags[DAG_ID], logical)


def _assert_published_with_scores(dr) -> None:
    """Every output has rows and this run's quality score."""
    for table in OUTPUTS:
        assert wh(f"select count(*) from {table}")[0][0] > 0, table
    scores = dict(wh("select dataset, score from quality.dataset_scores where dag_run_id = %s", (dr.run_id,)))
    assert set(scores) == {o.name for o in DERIVED.outputs}
    assert all(s is not None for s in scores.values())


@pytest.fixture(scope="module")
def published(fresh_warehouse, dagbag):
    data = generator.generate(SCALE)
    generator.write_landing(data)  # the visitor map
    _publish_inputs(data, AS_OF)
    first = _run(dagbag, AS_OF)
    return data, first


def test_waits_until_every_input_has_published(published):
    from c360 import products

    assert products.missing_inputs(DERIVED, AS_OF) == []
    later = products.missing_inputs(DERIVED, AS_OF + timedelta(days=1))
    weekly = {n for n in DERIVED.inputs if cadence_label(load_registry()[n].cadence.schedule) == "weekly"}
    assert weekly and {m.split(" ")[0] for m in later} == set(DERIVED.inputs) - weekly  # weekly: not due yet


def test_outputs_are_published_with_scores(published):
    _, dr = published
    _assert_published_with_scores(dr)


def test_rfm_matches_sql_in_postgres(published):
    """Recency/frequency/monetary and the quintile scores recomputed in plain PostgreSQL SQL."""
    from c360.segments import load_segments

    seg = load_segments()
    expected = wh("""
        with p as (
            select customer_id, order_id, order_date, total_amount::numeric(18, 2) as amount from c360.orders
            where order_date < %(as_of)s and order_date >= %(as_of)s - make_interval(days => %(window)s)
              and (order_status is null or order_status <> all(%(excluded)s)) and customer_id is not null
        ), c as (
            select customer_id, %(as_of)s::date - max(order_date)::date as recency_days,
                   count(distinct order_id) as frequency, sum(amount) as monetary
            from p group by customer_id
        ), n as (select count(*) as n from c)
        select customer_id, recency_days, frequency, monetary,
               1 + floor(5.0 * (rank() over (order by -recency_days) - 1) / n)::int,
               1 + floor(5.0 * (rank() over (order by frequency) - 1) / n)::int,
               1 + floor(5.0 * (rank() over (order by monetary) - 1) / n)::int
        from c, n""", {"as_of": AS_OF.replace(tzinfo=None), "window": seg.rfm.window_days,
                       "excluded": list(seg.rfm.excluded_statuses)})
    got = wh("select customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_segment "
             "from c360.rfm_history where as_of_date = %s", (AS_OF.date(),))
    assert {r[0]: tuple(r[1:7]) for r in got} == {r[0]: tuple(r[1:]) for r in expected}
    assert all(r[7] == seg.rfm_segment(*r[4:7]) for r in got)
    assert len(got) > 1000


def test_segments_profiles_and_the_sample_lens_query(published):
    data, _ = published
    segments = dict(wh("select segment_name, count(*) from c360.segment group by 1"))
    assert segments["Frequent Cart Abandoner"] == 1  # the seeded web sessions: only customer 1
    assert {"High Spending Customers", "Champions", "Hibernating"} <= set(segments)
    sample = wh("select total_customers, segment_name from c360.lens_segment_customers where state = 'California'")
    assert sample and all(isinstance(n, int) and n > 0 and isinstance(s, str) for n, s in sample)
    # one profile per person: same-person registrations are merged, every customer is in exactly one profile
    (customers,) = wh("select count(*) from c360.customer")[0]
    (members, profiles) = wh("select sum(jsonb_array_length(customer_ids)), count(*) from c360.customer_profile")[0]
    assert members == customers and profiles <= customers
    doc = wh("select profile from c360.customer_profile where total_purchases > 0 limit 1")[0][0]
    assert set(doc) == {"customerId", "identities", "demographics", "transactions", "engagement", "consent"}
    assert set(doc["engagement"]) == {"rfmScore", "engagementScore", "preferredChannel", "lastInteraction"}


def test_rerun_and_backfill_reproduce_each_date(published, dagbag):
    before = {t: _checksum(t) for t in OUTPUTS}
    _run(dagbag, AS_OF)
    assert {t: _checksum(t) for t in OUTPUTS} == before
    # backfill a past date: its history partition is added, the current state stays
    past = AS_OF - timedelta(days=7)
    _run(dagbag, past)
    where = "as_of_date = %s"
    past_rfm = _checksum("c360.rfm_history", where, (past.date(),))
    assert past_rfm[0] > 0
    assert _checksum("c360.rfm_history", where, (AS_OF.date(),)) == _checksum(
        "c360.rfm_history", "as_of_date = %s", (AS_OF.date(),))
    for table in ("c360.customer_profile", "c360.orders_enriched"):
        assert _checksum(table) == before[table], table
    assert wh("select max(as_of_date) from c360.rfm")[0][0] == AS_OF.date()
    # running the past date again reproduces it exactly
    _run(dagbag, past)
    assert _checksum("c360.rfm_history", where, (past.date(),)) == past_rfm
