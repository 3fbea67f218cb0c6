"""Real-world input and run order, through the real DAGs (dag.test(): PostgreSQL, Spark Connect, Soda).

* A full refresh of an older interval never undoes a later change (customer; brand's monthly refresh).
* A run of an interval before the dataset's start_date fails with a clear error instead of running no task;
  history from decades ago loads once the start_date says so.
* Source rows dated in the future are flagged in the quality results; an empty GA hour warns on volume.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import fetch, run_dag, wh

from c360 import generator, settings

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=2_000, days=10, orders_per_day=50, sessions_per_hour=5)


def _run(dagbag, dag_id: str, logical: datetime, **conf):
    return run_dag(dagbag.dags[dag_id], logical, **conf)


def _day(d: int) -> datetime:
    return datetime(2026, 11, d, tzinfo=UTC)


def _latest_customers(before: datetime) -> set[tuple]:
    """The source's latest version of every customer changed before ``before`` (what must be published)."""
    return set(fetch(settings.REDSHIFT_CONN_ID, """
        select distinct on (customer_id) customer_id, updated_at, email_address from customer
        where updated_at < %s order by customer_id, updated_at desc, email_address desc nulls last""",
                    (before.replace(tzinfo=None),)))


def test_a_full_refresh_of_an_older_interval_keeps_newer_rows_and_reconciles_deletions(sources, dagbag):
    # a customer deleted at the source before the refresh's interval end: the refresh must remove it
    gone = fetch(settings.REDSHIFT_CONN_ID, "select customer_id from customer group by customer_id "
                 "having max(updated_at) < '2026-11-14' order by customer_id limit 1")[0][0]
    for day in (19, 20, 21):  # bootstrap as of 11-19, then two incremental days
        dr, states = _run(dagbag, "customer_daily", _day(day), full_refresh=False)
        assert str(dr.state) == "success", states
    published_before = wh("select count(*) from c360.customer")[0][0]
    newer = wh("select count(*) from c360.customer where updated_at >= '2026-11-16'")[0][0]
    assert newer > 0, "the scenario needs customers changed after the refresh's interval"
    fetch(settings.REDSHIFT_CONN_ID, "delete from customer where customer_id = %s", (gone,))

    dr, states = _run(dagbag, "customer_daily", _day(16), full_refresh=True)  # interval [11-15, 11-16)
    assert str(dr.state) == "success", states

    published = set(wh("select customer_id, updated_at, email_address from c360.customer"))
    assert published == _latest_customers(_day(21))
    assert len(published) == published_before - 1
    assert gone not in {p[0] for p in published}
    mode, written = wh("select mode, rows_published from meta.publish_log where dag_run_id = %s", (dr.run_id,))[0]
    assert (mode, written) == ("full", len(published))


def test_the_monthly_brand_refresh_of_an_earlier_month_keeps_a_later_rename(sources, dagbag):
    weekly = _day(23).replace(hour=3)  # brand_weekly's interval [11-16 03:00, 11-23 03:00)
    dr, states = _run(dagbag, "brand_weekly", weekly, full_refresh=False)  # bootstrap
    assert str(dr.state) == "success", states
    (brand_id,) = fetch(settings.REDSHIFT_CONN_ID, "select brand_id from brand order by brand_id limit 1")[0]
    fetch(settings.REDSHIFT_CONN_ID, "update brand set brand_name = 'Renamed & Co', updated_at = '2026-11-20 10:00' "
          "where brand_id = %s", (brand_id,))
    dr, states = _run(dagbag, "brand_weekly", weekly, full_refresh=False)  # rerun picks the rename up
    assert str(dr.state) == "success", states
    assert wh("select brand_name from c360.brand where brand_id = %s", (brand_id,)) == [("Renamed & Co",)]

    dr, states = _run(dagbag, "brand_monthly_full_refresh", _day(1).replace(hour=4), full_refresh=True)
    assert str(dr.state) == "success", states  # interval [10-01 04:00, 11-01 04:00): before the rename
    assert wh("select brand_name from c360.brand where brand_id = %s", (brand_id,)) == [("Renamed & Co",)]
    (source_brands,) = fetch(settings.REDSHIFT_CONN_ID, "select count(distinct brand_id) from brand")[0]
    assert wh("select count(*) from c360.brand")[0][0] == source_brands


def test_a_run_before_the_start_date_fails_and_history_loads_once_the_start_date_allows(sources, dagbag,
                                                                                         monkeypatch):
    from c360 import runs

    fetch(settings.REDSHIFT_CONN_ID, """
        insert into product (sku_id, product_id, product_name, product_description, product_category,
                             product_subcategory, brand_id, list_price, sale_price, launched_ts, updated_at)
        values ('S-1998', 'P-1998', 'Walkman', 'a 1998 product', 'Electronics', 'Audio', null, 99.0, 89.0,
                '1998-03-01', '1998-03-04 10:00')""")
    logical = datetime(1998, 3, 9, 2, tzinfo=UTC)  # product_weekly's interval [1998-03-02, 1998-03-09) 02:00
    dr, states = _run(dagbag, "product_weekly", logical, full_refresh=False)
    assert str(dr.state) == "failed" and states["extract_to_raw"] == "failed", states
    assert runs.executed_any_task(dr)  # not a silent no-op: the first task ran and refused

    monkeypatch.setenv("C360_START_DATE", "1997-01-01")
    dr, states = _run(dagbag, "product_weekly", logical, full_refresh=False)
    assert str(dr.state) == "success", states
    assert wh("select product_name from c360.product where product_id = 'P-1998'") == [("Walkman",)]


def test_the_start_date_error_names_the_dataset_the_date_and_the_setting(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from c360.dag_factory import check_start_date
    from c360.registry import load_registry

    monkeypatch.delenv("C360_START_DATE", raising=False)
    ds = load_registry()["customer"]
    start = datetime(1999, 12, 31, tzinfo=UTC)
    with pytest.raises(AirflowFailException) as e:
        check_start_date(ds, "datasets", {"data_interval_start": start})
    assert str(e.value) == (
        "customer: the interval starting 1999-12-31 00:00 UTC is before its start_date 2026-01-01 "
        "(datasets.customer.start_date in the registry, or C360_START_DATE for all); set it earlier to load "
        "older history")
    check_start_date(ds, "datasets", {"data_interval_start": datetime(2026, 1, 1, tzinfo=UTC)})  # no error


def _check(dr, dataset: str, check: str):
    return wh("select outcome, measured_value from quality.check_results where dataset = %s and dag_run_id = %s "
              "and check_name = %s", (dataset, dr.run_id, check))


def test_future_dated_source_rows_are_flagged_in_the_quality_results(sources, dagbag):
    fetch(settings.OLTP_CONN_ID, """
        insert into transactions (transaction_id, order_id, amount, payment_method, transaction_ts, updated_at)
        values ('T-FUTURE', null, 10, 'card', '2030-01-01', '2030-01-01')""")
    try:
        dr, states = _run(dagbag, "transactions_daily", _day(21).replace(hour=1), full_refresh=False)
    finally:
        fetch(settings.OLTP_CONN_ID, "delete from transactions where transaction_id = 'T-FUTURE'")
    assert str(dr.state) == "success", states
    assert _check(dr, "transactions", "source rows dated in the future") == [("warned", 1.0)]
    dr, states = _run(dagbag, "transactions_daily", _day(21).replace(hour=1), full_refresh=False)
    assert _check(dr, "transactions", "source rows dated in the future") == [("passed", 0.0)]


def test_an_empty_ga_hour_publishes_nothing_and_warns_on_volume(sources, dagbag):
    from c360 import lake
    from c360.registry import load_registry

    hour = datetime(2026, 11, 20, 3, tzinfo=UTC)
    folder = lake.local_path(f"{settings.landing_uri()}/{load_registry()['web_analytics'].source.path}") / \
        f"dt={hour:%Y-%m-%d}/hr={hour:%H}"
    for f in folder.glob("*.json"):
        f.unlink()
    (folder / "export-empty.json").write_bytes(b"")
    dr, states = _run(dagbag, "web_analytics_hourly", hour + timedelta(hours=1))
    assert str(dr.state) == "success", states
    assert _check(dr, "web_analytics", "volume - landing files hold rows") == [("warned", 0.0)]


NO_TASK_DAGS = """
from datetime import UTC, datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("c360_test_no_task", start_date=datetime(2030, 1, 1, tzinfo=UTC), schedule=None) as late:
    EmptyOperator(task_id="nothing")
with DAG("c360_test_one_task", start_date=datetime(2026, 1, 1, tzinfo=UTC), schedule=None) as due:
    EmptyOperator(task_id="something")
"""


def test_the_demo_runner_tells_a_run_that_executed_no_task(platform, tmp_path):
    """Airflow reports success for a run of an interval before the DAG's start_date, having run nothing."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from c360 import runs

    (tmp_path / "no_task_dags.py").write_text(NO_TASK_DAGS)
    bag = DagBag(dag_folder=str(tmp_path))
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test needs the DAG serialized, as the processor would
    dr = bag.dags["c360_test_no_task"].test(logical_date=datetime(2026, 11, 20, tzinfo=UTC))
    assert str(dr.state) == "success"  # what Airflow says
    assert not runs.executed_any_task(dr)  # what the demo runner reports instead ("no task ran", exit 1)
    assert runs.executed_any_task(bag.dags["c360_test_one_task"].test(logical_date=datetime(2026, 11, 20, tzinfo=UTC)))
