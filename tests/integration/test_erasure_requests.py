"""Erasure requests through the DAGs, without Spark (tables and lake files seeded directly): filed in the table and
carried out by gdpr_erasure triggered without conf, or by the daily housekeeping; a run with nothing pending does
nothing; a request identity resolution would widen to too many customers is refused, erasing nothing."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import reset_erasure_state, run_dag, wh

from c360 import erasure, lake, pg, settings, warehouse
from c360.registry import load_registry

pytestmark = pytest.mark.integration

RAW_ORDERS = lake.uri("raw", "orders", datetime(2026, 11, 20, 12, tzinfo=UTC))
VISITOR_MAP = f"{settings.landing_uri()}/web_analytics/visitor_map/visitor_map.csv"


def _ids(table: str, column: str) -> set[str]:
    return {v for (v,) in wh(f"select {column} from {table}")}  # noqa: S608 - constant names


@pytest.fixture(scope="module")
def seeded(fresh_warehouse):
    """Customers C1 and C2 are one person (one email in two cases); C3 and the 101 customers sharing one
    placeholder email are others. C1 and C3 have an order with a line each; C2 a web visitor."""
    registry = load_registry()
    reset_erasure_state()
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for name in ("customer", "orders", "order_line_item"):
            warehouse.ensure_table(conn, registry[name])
        customers = [("C1", "ann@mail.example"), ("C2", " ANN@mail.example"), ("C3", "bob@mail.example")]
        customers += [(f"P{i:03d}", "n/a@placeholder.example") for i in range(101)]
        for cid, email in customers:
            conn.execute("insert into c360.customer (customer_id, email_address, updated_at) values (%s, %s, now())",
                         (cid, email))
        for oid, cid in (("O1", "C1"), ("O3", "C3")):
            conn.execute("insert into c360.orders (order_id, customer_id, order_date, updated_at) "
                         "values (%s, %s, now(), now())", (oid, cid))
            conn.execute("insert into c360.order_line_item (order_li_id, order_id, created_at) values (%s, %s, now())",
                         (f"L{oid}", oid))
    lake.replace_partition(RAW_ORDERS)
    pq.write_table(pa.table({"order_id": ["O1", "O3", "O9"], "customer_id": ["C1", "C3", "C2"]}),
                   lake.local_path(RAW_ORDERS) / "part-00000.parquet")
    vm = lake.local_path(VISITOR_MAP)
    vm.parent.mkdir(parents=True, exist_ok=True)
    vm.write_text("fullVisitorId,customer_id\nV2,C2\nV3,C3\n")


def _run(dagbag, dag_id: str, logical: datetime, **conf):
    return run_dag(dagbag.dags[dag_id], logical, **conf)


def test_nothing_pending_nothing_done(seeded, dagbag):
    dr, states = _run(dagbag, "gdpr_erasure", datetime.now(UTC))
    assert str(dr.state) == "success" and states["collect_requests"] == "success"
    assert wh("select count(*) from governance.audit_log where action = 'erasure' and dag_run_id = %s",
               (dr.run_id,)) == [(0,)]


def test_a_filed_request_is_carried_out_by_a_run_without_conf(seeded, dagbag, capsys):
    assert erasure.main(["request", "C2"]) == 0
    rid = int(capsys.readouterr().out.strip().splitlines()[-1])
    assert wh("select status, customer_id from governance.erasure_requests where id = %s", (rid,)) == [
        ("pending", "C2")]
    dr, states = _run(dagbag, "gdpr_erasure", datetime.now(UTC))
    assert str(dr.state) == "success", states
    # C2's email joins C1 (identity resolution's rule); their order, its line, the visitor go; C3 stays
    assert "C1" not in _ids("c360.customer", "customer_id") and "C2" not in _ids("c360.customer", "customer_id")
    assert "C3" in _ids("c360.customer", "customer_id")
    assert _ids("c360.orders", "order_id") == {"O3"} and _ids("c360.order_line_item", "order_id") == {"O3"}
    raw = pq.read_table(lake.local_path(RAW_ORDERS))
    assert raw["order_id"].to_pylist() == ["O3"]  # O9 is only in the lake: a row of C2 too
    assert lake.local_path(VISITOR_MAP).read_text() == "fullVisitorId,customer_id\nV3,C3\n"
    ((status, cid, counts),) = wh("select status, customer_id, counts from governance.erasure_requests "
                                   "where id = %s", (rid,))
    assert (status, cid) == ("done", None)
    assert counts["warehouse"] == {"c360.customer": 2, "c360.orders": 1, "c360.order_line_item": 1}
    assert counts["lake"] == {"landing/web_analytics": {"rows": 1, "files": 1}, "raw/orders": {"rows": 2, "files": 1}}
    assert counts["identifiers"] == {"customer_ids": 2, "visitor_ids": 1, "emails": 2, "phones": 0, "orders_keys": 2}
    assert {k for (k,) in wh("select kind from governance.erasure_suppression")} == {"customer_id", "visitor_id"}
    # a Parquet file read back by a reader that checks the schema: the same columns and types
    assert pq.read_schema(io.BytesIO(lake.local_path(RAW_ORDERS).joinpath("part-00000.parquet").read_bytes())).names \
        == ["order_id", "customer_id"]


def test_the_daily_housekeeping_carries_out_pending_requests(seeded, dagbag):
    rid = erasure.request("C3", requested_by="steward@example")
    dr, states = _run(dagbag, "housekeeping_daily", datetime(2026, 11, 21, 5, 30, tzinfo=UTC))
    assert str(dr.state) == "success", states
    assert "C3" not in _ids("c360.customer", "customer_id") and _ids("c360.orders", "order_id") == set()
    assert wh("select status, requested_by from governance.erasure_requests where id = %s", (rid,)) == [
        ("done", "steward@example")]
    assert erasure.process(rid) == {"request": rid, "status": "done"}  # once done, a rerun does nothing


def test_a_request_joining_too_many_customers_is_refused_and_erases_nothing(seeded, dagbag):
    before = wh("select count(*) from c360.customer")[0][0]
    dr, states = _run(dagbag, "gdpr_erasure", datetime.now(UTC), customer_id="P000")
    assert states["erase_person"] == "failed"  # at once: AirflowFailException, no retry
    assert wh("select count(*) from c360.customer")[0][0] == before == 101
    ((status, cid, counts),) = wh("select status, customer_id, counts from governance.erasure_requests "
                                   "where customer_id = 'P000'")
    assert status == "refused" and "more than 100 customer ids" in counts["refused"]
    assert erasure.pending() == []  # a refused request waits for a review, not for the next run
    assert wh("select rows, detail->>'refused' is not null from governance.audit_log where action = 'erasure' "
               "and dag_run_id = %s", (dr.run_id,)) == [(0, True)]
