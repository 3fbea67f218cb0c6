"""customer_360_daily advancing its state: a day's run exports only the rows changed since the previous run and
publishes the same outputs as a full rebuild (dag.test() on real PostgreSQL, Spark and Soda).

Day 1 is the first run (a full build that leaves the state). Between day 1 and day 2 the published inputs
change the way the datasets' incremental publishes change them (new orders with lines and payments, a
cancellation, a refund, an order moved to another customer, a line's quantity, a product's category, a
customer's email shared with another customer: an identity merge). Day 2's run must be incremental (its
export holds the changed rows only; orders_enriched is published as a delta) and every output must equal
what a ``full_refresh=true`` run of day 2 publishes. A full refresh of an input between two runs, and an
erasure, make the next run rebuild in full.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import run_succeeds, wh

from c360 import generator, lake, pg, products, settings, warehouse
from c360.registry import load_registry

from .test_customer360 import _publish_inputs

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=2_000, days=60, orders_per_day=150, sessions_per_hour=1, ga_days=1,
                        defects=False)
DAY1 = datetime(2026, 11, 21, tzinfo=UTC)
DAY2, DAY3 = DAY1 + timedelta(days=1), DAY1 + timedelta(days=2)
DERIVED = load_registry().derived["customer_360"]


def _run(dagbag, logical: datetime, **conf):
    return run_succeeds(dagbag.dags[DERIVED.dag_id], logical, **conf)


def _outputs(as_of: datetime) -> dict[str, tuple]:
    """(rows, md5 of the rows in order) of every output as of ``as_of`` (history outputs: that date's rows)."""
    out = {}
    for o in DERIVED.outputs:
        where = "as_of_date = %s" if o.history else "true"
        params = (as_of.date(),) if o.history else None
        out[o.name] = wh(f"select count(*), md5(string_agg(t::text, '|' order by t::text)) from {o.table} t "
                         f"where {where}", params)[0]
    return out


def _mode(run_id: str) -> dict[str, str]:
    return dict(wh("select dataset, mode from meta.publish_log where dag_run_id = %s", (run_id,)))


def _log_published(end: datetime) -> None:
    """Every input logged as published up to ``end`` (what their own DAGs' runs would log)."""
    registry = load_registry()
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for name in DERIVED.inputs:
            conn.execute(warehouse.sql_file("warehouse/publish_log.sql"), {
                "dataset": name, "table": registry[name].output.table, "start": end - timedelta(hours=1),
                "end": end, "run_id": f"seeded {end:%Y-%m-%d}", "mode": "incremental", "batch_rows": 0, "rows": 0})


def _change_inputs(day: datetime) -> None:
    """A day of changes to the published inputs, as incremental publishes make them (rows deleted and
    inserted, or updated: either way written by a transaction after the last export)."""
    d = (day - timedelta(days=1)).replace(tzinfo=None)  # the day before the run's as-of
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        # new orders placed during the day (copies of 40 older ones, new ids, dated in the day), with lines
        # and payments
        conn.execute("""
            create temp table picked as
            select order_id as old_id, 'N' || order_id as new_id, row_number() over (order by order_id) as n
            from c360.orders where order_status is distinct from 'cancelled' order by order_id limit 40""")
        conn.execute("""
            insert into c360.orders
            select (jsonb_populate_record(o, jsonb_build_object(
                'order_id', p.new_id, 'order_date', %(d)s::timestamp + make_interval(mins => p.n::int * 7),
                'updated_at', %(d)s::timestamp + make_interval(mins => p.n::int * 7)))).*
            from c360.orders o join picked p on o.order_id = p.old_id""", {"d": d})
        conn.execute("""
            insert into c360.order_line_item
            select (jsonb_populate_record(l, jsonb_build_object(
                'order_li_id', 'N' || l.order_li_id, 'order_id', p.new_id))).*
            from c360.order_line_item l join picked p on l.order_id = p.old_id""")
        conn.execute("""
            insert into c360.transactions
            select (jsonb_populate_record(t, jsonb_build_object(
                'transaction_id', 'N' || t.transaction_id, 'order_id', p.new_id))).*
            from c360.transactions t join picked p on t.order_id = p.old_id""")
        # an older order cancelled, one refunded (a negative payment), one moved to another customer, a
        # line's quantity changed
        conn.execute("update c360.orders set order_status = 'cancelled' where order_id = "
                     "(select max(order_id) from c360.orders where order_status is distinct from 'cancelled' "
                     "and order_id not like 'N%%')")
        conn.execute("""
            insert into c360.transactions
            select (jsonb_populate_record(t, jsonb_build_object(
                'transaction_id', 'R' || t.transaction_id, 'amount', -t.amount))).*
            from c360.transactions t where t.transaction_id = (select min(transaction_id) from c360.transactions
                                                               where transaction_id not like 'N%%')""")
        conn.execute("update c360.orders set customer_id = (select max(customer_id) from c360.customer) "
                     "where order_id = (select min(order_id) from c360.orders where order_id not like 'N%%')")
        conn.execute("update c360.order_line_item set qty = qty + 1 where order_li_id = "
                     "(select min(order_li_id) from c360.order_line_item where qty < 50 "
                     "and order_li_id not like 'N%%')")
        # a product moves to another category; a customer takes another's email (one person now)
        conn.execute("update c360.product set product_category = 'Baby' where product_id = "
                     "(select min(product_id) from c360.product where product_category <> 'Baby')")
        conn.execute("""
            update c360.customer set email_address = (select email_address from c360.customer order by customer_id limit 1)
            where customer_id = (select customer_id from c360.customer order by customer_id offset 1 limit 1)""")
    _log_published(day)


@pytest.fixture(scope="module")
def day2(fresh_warehouse, dagbag):
    data = generator.generate(SCALE)
    generator.write_landing(data)
    _publish_inputs(data, DAY1)
    first = _run(dagbag, DAY1)
    state1 = wh("select as_of, state_uri from meta.derived_state where product = %s", (DERIVED.name,))
    _change_inputs(DAY2)
    incremental = _run(dagbag, DAY2)
    got = _outputs(DAY2)
    exported = {n: warehouse.parquet_dataset(products.partition(DERIVED, DAY2, "inputs", n)).count_rows()
                for n in DERIVED.inputs}
    state2 = wh("select as_of, state_uri from meta.derived_state where product = %s", (DERIVED.name,))
    rebuilt = _run(dagbag, DAY2, full_refresh=True)
    return {"first": first, "state1": state1, "incremental": incremental, "got": got, "state2": state2,
            "exported": exported, "full_export": {
                n: warehouse.parquet_dataset(products.partition(DERIVED, DAY2, "inputs", n)).count_rows()
                for n in DERIVED.inputs},
            "rebuilt": rebuilt, "expected": _outputs(DAY2)}


def test_the_first_run_builds_in_full_and_records_its_state(day2):
    assert _mode(day2["first"].run_id)["orders_enriched"] == "current"
    [(as_of, uri)] = day2["state1"]
    assert as_of == DAY1 and uri.startswith(products.state_root(DERIVED))


def test_the_next_day_advances_the_state_and_publishes_enriched_orders_as_a_delta(day2):
    modes = _mode(day2["incremental"].run_id)
    assert modes["orders_enriched"] == "delta" and modes["rfm"] == "history"
    [(as_of, uri)] = day2["state2"]
    assert as_of == DAY2 and uri != day2["state1"][0][1]
    # the export held the changed rows only: 40 new orders, the cancelled one and the moved one; their lines
    # and payments plus the changed line and the refund; the other inputs in full
    exported, full = day2["exported"], day2["full_export"]
    assert exported["orders"] == 42
    assert 40 < exported["order_line_item"] < full["order_line_item"] / 10
    assert 40 < exported["transactions"] < full["transactions"] / 10
    assert {n: exported[n] for n in ("customer", "product", "brand")} == {
        n: full[n] for n in ("customer", "product", "brand")}


def test_every_output_of_the_incremental_day_equals_a_full_rebuild(day2):
    assert _mode(day2["rebuilt"].run_id)["orders_enriched"] == "current"  # full_refresh=true rebuilt
    assert day2["got"] == day2["expected"]
    assert all(rows > 0 for rows, _ in day2["got"].values())
    # the day's new orders are in (purchases before the as-of)
    assert wh("select count(*) from c360.orders_enriched where order_id like 'N%%'")[0][0] >= 40


def test_a_full_refresh_of_an_input_makes_the_next_run_rebuild(day2, dagbag):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # what publishing a full refresh of orders records
        warehouse.audit(conn, "publish", "c360.orders", 0, detail={"dataset": "orders", "mode": "full"})
    _log_published(DAY3)
    dr = _run(dagbag, DAY3)
    assert _mode(dr.run_id)["orders_enriched"] == "current"
    assert wh("select as_of from meta.derived_state")[0][0] == DAY3
    # the states no later state reads were deleted: the one left is day 3's (a full build reads no earlier one)
    folders = products.state_folders(DERIVED)
    assert len(folders) == 1 and folders[0].startswith(lake.uri("analytics", DERIVED.name, DAY3) + "/state/")


def test_forgetting_the_states_deletes_them(day2):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        stateful = products.forget_states(conn)
    for d in stateful:
        products.drop_states(d)
    assert wh("select count(*) from meta.derived_state")[0][0] == 0
    assert products.state_folders(DERIVED) == []
