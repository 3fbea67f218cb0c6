"""The customer DAG end to end with dag.test(): embedded PostgreSQL, spark-submit, Soda, OpenLineage.

One module-scoped DAG run per scenario (each ~30 s, most of it spark-submit start-up):
defects on → published, exactly the defect-broken checks warn; rerun → identical table; systemic defect →
blocking failure and the published table untouched; defects off → score 100.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import load_sources, run_dag, wh

from c360 import generator, pg, settings

pytestmark = pytest.mark.integration

DAG_ID = "customer_daily"
LOGICAL = datetime(2026, 11, 21, tzinfo=UTC)  # interval [2026-11-20, 2026-11-21)
SCALE = generator.Scale(customers=2_000, days=5, orders_per_day=50, sessions_per_hour=5)
DEFECT_CHECKS = {"accuracy - gender", "completeness - contact email", "value range - age"}
TASKS = ["extract_to_raw", "stage_with_spark", "load_to_staging", "check_quality", "publish_table"]


def _run(dagbag, **conf):
    return run_dag(dagbag.dags[DAG_ID], LOGICAL, **conf)


def _checksum() -> str:
    return wh("select md5(string_agg(t::text, '|' order by customer_id)) from c360.customer t")[0][0]


def _checks(run_id: str) -> dict[str, str]:
    rows = wh("select check_name, outcome from quality.check_results where dataset='customer' and dag_run_id=%s",
              (run_id,))
    return dict(rows)


@pytest.fixture(scope="module")
def first_run(sources, dagbag):
    dr, states = _run(dagbag)  # on a fresh warehouse: no published table, so the first run bootstraps
    return sources, dr, states


def test_run_publishes_the_customer_table(first_run):
    data, dr, states = first_run
    assert str(dr.state) == "success", states
    # first run bootstraps: every distinct customer changed before the interval end
    with pg.connect(settings.REDSHIFT_CONN_ID) as conn:
        expected = conn.execute(
            "select count(distinct customer_id) from customer where updated_at < %s", (LOGICAL.replace(tzinfo=None),)
        ).fetchone()[0]
    assert wh("select count(*), count(distinct customer_id) from c360.customer")[0] == (expected, expected)
    log = wh("select mode, rows_published from meta.publish_log where dag_run_id=%s", (dr.run_id,))
    assert log == [("full", expected)]


def test_stale_duplicates_are_quarantined_not_published(first_run):
    data, dr, _ = first_run
    import pyarrow.dataset as pads

    from c360 import lake

    q = pads.dataset(str(lake.local_path(lake.uri("quarantine", "customer", datetime(2026, 11, 20)))),
                     format="parquet").to_table()
    assert q.num_rows == data.defects["duplicate_customer_id"] > 0
    assert all(r.startswith("superseded: a newer version of customer_id=") for r in q.column("_reject_reason").to_pylist())


def test_defects_fail_exactly_their_checks(first_run):
    _, dr, _ = first_run
    checks = _checks(dr.run_id)
    assert {name for name, outcome in checks.items() if outcome != "passed"} == DEFECT_CHECKS
    assert {checks[c] for c in DEFECT_CHECKS} == {"warned"}
    score = wh("select score, checks_passed, checks_warned, checks_failed from quality.dataset_scores "
               "where dataset='customer' and dag_run_id=%s", (dr.run_id,))
    passed = len(checks) - len(DEFECT_CHECKS)
    (value, *counts), = score
    assert float(value) == round(100 * passed / len(checks), 2)
    assert counts == [passed, 3, 0]


def test_lineage_events_for_every_task_validate_against_the_spec(first_run):
    from . import openlineage_spec

    mine = [e for e in openlineage_spec.read_events() if e["job"]["name"].startswith(f"{DAG_ID}.")]
    seen = {(e["job"]["name"], e["eventType"]) for e in mine}
    for task in TASKS:
        assert {(f"{DAG_ID}.{task}", "START"), (f"{DAG_ID}.{task}", "COMPLETE")} <= seen, task
    assert sum(openlineage_spec.validate(e) for e in mine) > 0


def test_rerun_of_the_same_interval_changes_nothing(first_run, dagbag):
    before = _checksum()
    dr, states = _run(dagbag)
    assert str(dr.state) == "success", states
    assert _checksum() == before
    assert wh("select count(*) - count(distinct customer_id) from c360.customer")[0][0] == 0


def test_failed_gate_leaves_the_published_table_as_it_was(first_run, dagbag):
    before = _checksum()
    # a systemic defect inside the interval: 20 % of customers get an impossible age
    with pg.connect(settings.REDSHIFT_CONN_ID) as conn:
        conn.execute("update customer set age = 300, updated_at = '2026-11-20 12:00' "
                     "where customer_id in (select customer_id from customer order by customer_id limit 400)")
    dr, states = _run(dagbag)
    assert str(dr.state) == "failed"
    assert states["check_quality"] == "failed"
    assert states["publish_table"] == "upstream_failed"
    assert _checksum() == before
    assert _checks(dr.run_id)["value range - age"] == "failed"


def test_clean_data_scores_100(first_run, dagbag):
    load_sources(generator.Scale(**{**SCALE.__dict__, "defects": False}))
    dr, states = _run(dagbag, full_refresh=True)
    assert str(dr.state) == "success", states
    assert set(_checks(dr.run_id).values()) == {"passed"}
    assert wh("select score from quality.dataset_scores where dag_run_id=%s", (dr.run_id,))[0][0] == 100
