"""The value a quality check records is the metric its threshold is evaluated on, in its unit: real Soda on
batch tables in the warehouse, each value compared with SQL computed independently on the same table.

Batches are built row by row in SQL with known defects (NULL and duplicate keys, blank and malformed text,
out-of-range and unlisted values, late and early timestamps, a bot session, a schema drift), so no check
measures 0 by accident, and an empty batch shows what Soda cannot measure (freshness: None, not 0).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from c360 import accepted_values, pg, quality, settings, warehouse
from c360.registry import load_registry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1)  # batch timestamps (UTC wall clock, as stage writes them)
EMAIL_FORMAT = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"  # quality/customer.yml, email format


def _sql(query: str, params=None):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute(query, params).fetchone()


def _batch(name: str, like: str, rows_sql: str, params: dict | None = None) -> str:
    """staging.measured_<name>: like the published table (NOT NULL dropped, so defects can be inserted)."""

    registry = load_registry()
    table = f"staging.measured_{name}"
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if like in registry.datasets:
            warehouse.ensure_table(conn, registry[like])
        conn.execute(f"drop table if exists {table}")
        conn.execute(f"create table {table} (like {registry[like].output.table})")
        for (column,) in conn.execute("select column_name from information_schema.columns where table_schema = "
                                      "'staging' and table_name = %s and is_nullable = 'NO'",
                                      (table.split(".")[1],)).fetchall():
            conn.execute(f"alter table {table} alter column {column} drop not null")
        if rows_sql:
            conn.execute(rows_sql.format(table=table), params)
        conn.execute(f"analyze {table}")
    return table


CUSTOMER_ROWS = """
insert into {table} (customer_id, gender, phone_number, email_address, age, updated_at)
select case when mod(g, 97) = 0 then null when mod(g, 61) = 0 then 'C-1' else 'C-' || g end,
       case when mod(g, 19) = 0 then 'male' when mod(g, 29) = 0 then null else (array['M', 'F', 'O', 'U'])[mod(g, 4) + 1] end,
       case when mod(g, 11) = 0 then '' when mod(g, 13) = 0 then null else '555-' || g end,
       case when mod(g, 17) = 0 then null when mod(g, 23) = 0 then 'not-an-email' when mod(g, 31) = 0 then ''
            else 'p' || g || '@example.com' end,
       case when mod(g, 14) = 0 then 150 when mod(g, 33) = 0 then 5 when mod(g, 37) = 0 then null else 18 + mod(g, 80) end,
       %(t0)s + g * interval '1 minute'
from generate_series(1, 500) g
"""

WEB_ROWS = """
insert into {table} (activity_uuid, session_id, visit_start_ts, activity_ts, product_sku, product_price, quantity,
                     event_action, transaction_id)
select case when mod(g, 37) = 0 then null when mod(g, 53) = 0 then 'A-1' else 'A-' || g end,
       'S-' || mod(g, 30),
       %(t0)s + (mod(g, 30)) * interval '1 minute',
       %(t0)s + (mod(g, 30)) * interval '1 minute' + (mod(g, 10)) * interval '1 second'
           - case when mod(g, 43) = 0 then interval '1 minute' else interval '0' end,
       case when mod(g, 9) = 0 then null else 'SKU-' || mod(g, 17) end,
       case when mod(g, 41) = 0 then -1 else 10 end,
       case when mod(g, 23) = 0 then 0 else 1 end,
       case when mod(g, 50) = 0 then 'page_view' when mod(g, 7) = 0 then 'add_to_cart' when mod(g, 31) = 0 then 'order_placed'
            else 'product_view' end,
       case when mod(g, 62) = 0 then 'T-' || g end
from generate_series(1, 300) g
union all  -- twelve single-view sessions: bounces
select 'B-' || g, 'B-' || g, %(t0)s + interval '40 minutes', %(t0)s + interval '40 minutes', 'SKU-1', 10, 1,
       'product_view', null
from generate_series(1, 12) g
union all  -- a bot: 60 product views in one session
select 'BOT-' || g, 'BOT', %(t0)s + interval '45 minutes', %(t0)s + interval '45 minutes' + g * interval '1 second',
       'SKU-2', 10, 1, 'product_view', null
from generate_series(1, 60) g
"""

# the previous 24 hours in the published table (the bounce rate trend compares with them): 20 sessions, 5 bounced
WEB_HISTORY = """
insert into c360.web_activity (activity_uuid, session_id, visit_start_ts, activity_ts, event_action)
select 'MVHIST-' || s || '-' || v, 'MVHIST-' || s, %(t0)s - interval '6 hours', %(t0)s - interval '6 hours'
       + v * interval '1 second', 'product_view'
from generate_series(1, 20) s, generate_series(1, case when s <= 5 then 1 else 3 end) v
"""

ORDER_ROWS = """
insert into {table} (order_id, order_date, order_delivery_date, order_status, payment_method, total_amount)
select 'O-' || g, %(t0)s + g * interval '1 minute',
       %(t0)s + g * interval '1 minute' + case when mod(g, 8) = 0 then interval '-1 day' when mod(g, 9) = 0
           then interval '40 days' else interval '3 days' end,
       case when mod(g, 25) = 0 then 'shiped' else %(status)s end,
       case when mod(g, 20) = 0 then 'cash??' else %(method)s end, case when mod(g, 12) = 0 then null else 10 end
from generate_series(1, 100) g
"""

BRAND_ROWS = """
insert into {table} (brand_id, description, brand_type, updated_at)
select 'BR-' || g, case when mod(g, 4) = 0 then '' else 'a brand' end,
       case when mod(g, 5) = 0 then 'Generic' else 'National' end, %(t0)s + g * interval '1 day'
from generate_series(1, 20) g
"""

# the check types no contract uses yet (row_count, aggregate) and the metrics they do not (duplicate and
# failed rows in percent), on the customer batch
EXTRA_CONTRACT = """
dataset: c360_warehouse/c360/staging/customer
checks:
  - row_count:
      name: rows in the batch
      threshold:
        must_be_greater_than: 0
  - failed_rows:
      name: blank phones in percent
      expression: phone_number = ''
      threshold:
        metric: percent
        must_be_less_than: 100
columns:
  - name: customer_id
    checks:
      - duplicate:
          name: customer id unique in percent
          threshold:
            metric: percent
            must_be: 0
  - name: age
    checks:
      - aggregate:
          name: average age
          function: avg
          threshold:
            must_be_less_than: 1000
"""


def _query_of(contract: str, check_name: str, table: str) -> str:
    checks = yaml.safe_load((settings.PROJECT_DIR / "quality" / contract).read_text())["checks"]
    (check,) = [c for c in checks if next(iter(c.values())).get("name") == check_name]
    return next(iter(check.values()))["query"].replace("${var.BATCH}", table)


def _verify(contract: Path, table: str, now: datetime, columns=None) -> dict[str, quality.CheckResult]:
    results = quality.verify(contract, table, now.replace(tzinfo=UTC), columns)
    return {r.check_name: r for r in results}


@pytest.fixture(scope="module")
def batches(platform, tmp_path_factory):
    """(contract, check name) → (the CheckResult, the (value, unit) computed in SQL on the same batch)."""
    lists = accepted_values.load()
    out: dict[tuple[str, str], tuple[quality.CheckResult, tuple]] = {}

    def compare(contract: str, results: dict, expected: dict) -> None:
        assert set(results) == set(expected), f"{contract}: every check has its independent value"
        out.update({(contract, name): (results[name], expected[name]) for name in results})

    # customer: missing (count, percent with blanks), duplicate, invalid (list, format, range), freshness (hours)
    customer = _batch("customer", "customer", CUSTOMER_ROWS, {"t0": T0})
    (newest,) = _sql(f"select max(updated_at) from {customer}")
    now = newest + timedelta(hours=14, minutes=3)
    got = _sql(f"""
        select count(*) filter (where customer_id is null),
               count(customer_id) - count(distinct customer_id),
               100.0 * count(*) filter (where gender is not null and gender <> all(%(gender)s)) / count(*),
               100.0 * count(*) filter (where phone_number is null or phone_number = '') / count(*),
               100.0 * count(*) filter (where email_address is null or email_address = '') / count(*),
               count(*) filter (where email_address is not null and email_address !~ %(email)s),
               100.0 * count(*) filter (where age < 18 or age > 120) / count(*),
               extract(epoch from %(now)s - max(updated_at)) / 3600
        from {customer}""", {"gender": list(lists["gender"]), "email": EMAIL_FORMAT, "now": now})
    ids_missing, ids_duplicate, gender_pct, phone_pct, email_pct, email_bad, age_pct, hours = got
    compare("customer.yml", _verify(settings.PROJECT_DIR / "quality" / "customer.yml", customer, now), {
        "schema matches the registry": (0, "mismatches"),
        "freshness - newest row before the interval end": (hours, "hours"),
        "customer id present": (ids_missing, "rows"),
        "customer id unique": (ids_duplicate, "rows"),
        "accuracy - gender": (gender_pct, "%"),
        "completeness - contact phone": (phone_pct, "%"),
        "completeness - contact email": (email_pct, "%"),
        "email format": (email_bad, "rows"),
        "value range - age": (age_pct, "%"),
    })

    extra = tmp_path_factory.mktemp("contracts") / "extra.yml"
    extra.write_text(EXTRA_CONTRACT)
    rows, blank_pct, dup_pct, avg_age = _sql(f"""
        select count(*), 100.0 * count(*) filter (where phone_number = '') / count(*),
               100.0 * (count(customer_id) - count(distinct customer_id)) / count(customer_id), avg(age)
        from {customer}""")
    compare("extra.yml", _verify(extra, customer, now, load_registry()["customer"].columns), {
        "rows in the batch": (rows, "rows"),
        "blank phones in percent": (blank_pct, "%"),
        "customer id unique in percent": (dup_pct, "%"),
        "average age": (avg_age, None),
    })

    # web analytics: failed rows (expression, query), metric (query), missing, duplicate, invalid in counts
    web = _batch("web_analytics", "web_analytics", WEB_ROWS, {"t0": T0})
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("delete from c360.web_activity where activity_uuid like 'MVHIST-%'")
        conn.execute(WEB_HISTORY, {"t0": T0})
    (trend,) = _sql(_query_of("web_analytics.yml", "trend - bounce rate", web))
    (newest,) = _sql(f"select max(activity_ts) from {web}")
    now = newest + timedelta(minutes=95, seconds=30)
    got = _sql(f"""
        select count(*) filter (where activity_uuid is null),
               count(activity_uuid) - count(distinct activity_uuid),
               count(*) filter (where session_id is null),
               count(*) filter (where visit_start_ts is null),
               100.0 * count(*) filter (where product_sku is null) / count(*),
               count(*) filter (where product_price < 0),
               count(*) filter (where quantity < 1 or quantity > 100),
               count(*) filter (where event_action <> all(%(actions)s)),
               count(*) filter (where activity_ts < visit_start_ts),
               count(*) filter (where event_action = 'order_placed' and transaction_id is null),
               (select count(*) from (select session_id from {web} where event_action = 'product_view'
                                      group by session_id having count(*) > 50) bots),
               extract(epoch from %(now)s - max(activity_ts)) / 60
        from {web}""", {"actions": list(lists["event_action"]), "now": now})
    try:
        # a table, one row per check (its independent value and unit): rows of one shape, not repeated logic
        compare("web_analytics.yml", _verify(settings.PROJECT_DIR / "quality" / "web_analytics.yml", web, now), {
            "schema matches the registry": (0, "mismatches"),
            "freshness - newest row before the interval end": (got[11], "minutes"),
            "activity id present": (got[0], "rows"),
            "activity id unique": (got[1], "rows"),
            "completeness - user sessions": (got[2], "rows"),
            "completeness - visit start": (got[3], "rows"),
            "completeness - product sku": (got[4], "%"),
            "product price not negative": (got[5], "rows"),
            "quantity positive": (got[6], "rows"),
            "event action is a lens entity": (got[7], "rows"),
            "timeliness - activity after visit start": (got[8], "rows"),
            "consistency - order placed has a transaction": (got[9], "rows"),
            "outliers - page views": (got[10], "rows"),
            "trend - bounce rate": (trend, None),
        })
    finally:
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            conn.execute("delete from c360.web_activity where activity_uuid like 'MVHIST-%'")

    # orders: freshness in minutes, failed rows by expression, missing
    orders = _batch("orders", "orders", ORDER_ROWS,
                    {"t0": T0, "status": lists["order_status"][0], "method": lists["payment_method"][0]})
    (newest,) = _sql(f"select max(order_date) from {orders}")
    now = newest + timedelta(minutes=45)
    late, amount_missing, status_pct, method_pct, minutes = _sql(f"""
        select count(*) filter (where order_delivery_date < order_date
                                   or order_delivery_date > order_date + interval '30 days'),
               count(*) filter (where total_amount is null),
               100.0 * count(*) filter (where order_status <> all(%(statuses)s)) / count(*),
               100.0 * count(*) filter (where payment_method <> all(%(methods)s)) / count(*),
               extract(epoch from %(now)s - max(order_date)) / 60
        from {orders}""", {"now": now, "statuses": list(lists["order_status"]),
                           "methods": list(lists["payment_method"])})
    compare("orders.yml", _verify(settings.PROJECT_DIR / "quality" / "orders.yml", orders, now), {
        "schema matches the registry": (0, "mismatches"),
        "freshness - newest row before the interval end": (minutes, "minutes"),
        "timeliness - delivery date": (late, "rows"),
        "order id present": (0, "rows"),
        "order id unique": (0, "rows"),
        "consistency - order status": (status_pct, "%"),
        "accuracy - payment method": (method_pct, "%"),
        "total amount present": (amount_missing, "rows"),
    })

    # brand: freshness in days
    brand = _batch("brand", "brand", BRAND_ROWS, {"t0": T0})
    (newest,) = _sql(f"select max(updated_at) from {brand}")
    now = newest + timedelta(days=3, hours=12)
    blank_pct, other_pct, days = _sql(f"""
        select 100.0 * count(*) filter (where description is null or description = '') / count(*),
               100.0 * count(*) filter (where brand_type <> all(%(types)s)) / count(*),
               extract(epoch from %(now)s - max(updated_at)) / 86400
        from {brand}""", {"types": list(lists["brand_type"]), "now": now})
    compare("brand.yml", _verify(settings.PROJECT_DIR / "quality" / "brand.yml", brand, now), {
        "schema matches the registry": (0, "mismatches"),
        "freshness - newest row before the interval end": (days, "days"),
        "brand id present": (0, "rows"),
        "uniqueness - brand id": (0, "rows"),
        "accuracy - brand description": (blank_pct, "%"),
        "consistency - brand category": (other_pct, "%"),
    })
    return out


def test_each_check_records_the_metric_its_threshold_is_evaluated_on(batches):
    wrong = {}
    for key, (result, (value, unit)) in batches.items():
        if (result.unit, result.measured_value) != (unit, pytest.approx(float(value), rel=1e-9, abs=1e-9)):
            wrong[key] = {"soda": (result.measured_value, result.unit), "sql": (float(value), unit)}
    assert not wrong, wrong


def test_the_batches_hold_the_defects_each_check_is_about(batches):
    """Most compared values are not 0: a check recording a wrong metric that happens to be 0 too is caught."""
    nonzero = {k for k, (r, (value, _)) in batches.items() if value}
    assert len(nonzero) >= 25, sorted(set(batches) - nonzero)


def test_every_check_type_the_contracts_use_is_compared(batches):
    used = {next(iter(c)) for f in (settings.PROJECT_DIR / "quality").glob("*.yml") if f.name != "accepted_values.yml"
            for contract in [yaml.safe_load(f.read_text())]
            for c in [*contract.get("checks", []), *(c for col in contract.get("columns", [])
                                                     for c in col.get("checks") or [])]}
    compared = {r.kind for r, _ in batches.values()}
    kinds = {"missing": "not_null", "duplicate": "unique", "failed_rows": "custom_sql", "metric": "custom_metric"}
    assert {kinds.get(t, t) for t in used} - {"invalid"} <= compared
    assert {"accepted_values", "format", "accepted_range", "row_count", "aggregate"} <= compared


def test_freshness_of_an_empty_batch_is_not_measured(platform):
    """Soda cannot measure freshness without rows: the check warns, and records no value (not 0)."""
    brand = _batch("brand_empty", "brand", "")
    results = _verify(settings.PROJECT_DIR / "quality" / "brand.yml", brand, T0)
    fresh = results["freshness - newest row before the interval end"]
    assert (fresh.outcome, fresh.measured_value, fresh.unit) == ("warned", None, "days")
    assert fresh.measured == "not measured"
    assert results["uniqueness - brand id"].measured_value == 0  # counted: no duplicate in no rows


def test_a_schema_drift_is_measured_in_mismatches(platform):
    """A dropped, an added and a retyped column: three mismatches, as information_schema shows them."""
    customer = _batch("customer_drift", "customer", CUSTOMER_ROWS, {"t0": T0})
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(f"alter table {customer} drop column hobbies, add column loyalty_tier text, "
                     "alter column age type bigint")
    declared = {c.name: c.types.soda for c in load_registry()["customer"].columns}  # what the check expects
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        actual = dict(conn.execute("select column_name, data_type from information_schema.columns where "
                                   "table_schema = 'staging' and table_name = 'measured_customer_drift'").fetchall())
    mismatches = len(declared.keys() ^ actual.keys()) + sum(
        declared[c] != actual[c] for c in declared.keys() & actual.keys())
    result = _verify(settings.PROJECT_DIR / "quality" / "customer.yml", customer, T0)["schema matches the registry"]
    assert (result.outcome, result.measured_value, result.unit) == ("failed", float(mismatches), "mismatches")
    assert mismatches == 3


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_the_gate_reports_and_records_values_with_their_units(platform):
    """The warning log lines and the gate failure name value and unit; quality.check_results stores the unit."""
    from c360.warehouse import Interval

    customer = _batch("customer_gate", "customer", CUSTOMER_ROWS, {"t0": T0})
    (newest,) = _sql(f"select max(updated_at) from {customer}")
    end = (newest + timedelta(hours=14, minutes=3)).replace(tzinfo=UTC)
    interval = Interval(end - timedelta(days=1), end, "measured_values_test", "measured_values_test")
    ds = load_registry()["customer"]
    logger, lines = logging.getLogger("c360.quality"), _Lines()  # Airflow's logging setup keeps caplog out
    logger.addHandler(lines)
    try:
        with pytest.raises(quality.QualityGateFailed) as e:
            quality.enforce(ds.name, [quality.gate(ds.name, ds.table, ds.contract_path, customer, interval)],
                            interval.run_id)
    finally:
        logger.removeHandler(lines)
    (missing,) = _sql(f"select count(*) from {customer} where customer_id is null")
    assert f"  - customer id present: measured {missing} rows\n      threshold: level: fail must be: 0\n" \
        in str(e.value)
    assert "quality warning customer: freshness - newest row before the interval end measured 14.05 hours " \
        "(level: warn must be less than: 12)" in lines.lines
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        units = dict(conn.execute("select check_name, unit from quality.check_results where dag_run_id = %s",
                                  (interval.run_id,)).fetchall())
    assert units["freshness - newest row before the interval end"] == "hours"
    assert units["completeness - contact email"] == "%" and units["customer id unique"] == "rows"


def test_bootstrap_adds_the_unit_column_to_a_warehouse_bootstrapped_before_it(platform):
    from c360.warehouse import sql_file

    def has_unit(conn) -> bool:
        return conn.execute("select count(*) from information_schema.columns where table_schema = 'quality' "
                            "and table_name = 'check_results' and column_name = 'unit'").fetchone()[0] == 1

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(sql_file("warehouse/bootstrap.sql"))
        conn.execute("alter table quality.check_results drop column unit")
        assert not has_unit(conn)
        conn.execute(sql_file("warehouse/bootstrap.sql"))
        assert has_unit(conn)
        conn.execute(sql_file("warehouse/bootstrap.sql"))  # and again: nothing to add
        assert has_unit(conn)
