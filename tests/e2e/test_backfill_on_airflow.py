"""End to end on a running Airflow: api-server, scheduler and dag-processor on 127.0.0.1 (LocalExecutor,
metadata in the embedded PostgreSQL), driven only through the REST API like a data engineer in the UI.

Unpause and backfill 3 days of customer_daily and 6 hours of web_analytics_hourly; every run succeeds; the
published rows of those intervals get a checksum; clearing one task of one run reruns it and leaves the
checksums unchanged, with no duplicate business key in any published table. At the end both DAGs are paused
again and their runs and results deleted: the modules here share one Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from helpers import duplicate_keys, key_checksum

from c360.registry import load_registry

from .conftest import TODAY, Api, leave_as_found, wait

pytestmark = pytest.mark.e2e

PUBLISHED_TABLES_EMPTY = True  # the `sources` fixture (the tier's SCALE): every run is an incremental upsert
DAILY = ("customer_daily", TODAY - timedelta(days=4), TODAY - timedelta(days=2))  # 3 daily intervals
HOURLY = ("web_analytics_hourly", TODAY - timedelta(hours=14), TODAY - timedelta(hours=9))  # 6 hours


def _interval_checksum(ds, start: datetime, end: datetime) -> tuple[int, int, str]:
    """``key_checksum`` of the published rows whose version (a web session: its start) is in [start, end)."""
    return key_checksum(ds, "visit_start_ts" if ds.name == "web_analytics" else ds.version_column, start, end)


def _all_done(api: Api, dag_id: str, n_backfill: int):
    runs = api.runs(dag_id)
    backfill = [r for r in runs if r["run_type"] == "backfill"]
    failed = [r for r in runs if r["state"] == "failed"]
    assert not failed, f"{dag_id}: failed runs {[(r['dag_run_id'], api.tasks(dag_id, r['dag_run_id'])) for r in failed]}"
    if len(backfill) == n_backfill and all(r["state"] == "success" for r in runs):
        return runs
    return None


@pytest.fixture(scope="module")
def backfilled(airflow, sources):
    # Published tables exist (empty), so every run is an order-independent incremental upsert; a bootstrap
    # full load racing the scheduled run is what `max_active_runs=1` backfills avoid in production.
    api = airflow
    try:
        for dag_id, start, end in (DAILY, HOURLY):
            api.patch(f"/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
            api.post("/api/v2/backfills", {"dag_id": dag_id, "from_date": start.isoformat(),
                                           "to_date": end.isoformat(), "max_active_runs": 1,
                                           "reprocess_behavior": "completed"})
        runs = {dag_id: wait(f"{dag_id} runs", lambda d=dag_id, n=n: _all_done(api, d, n), poll=5)
                for dag_id, n in ((DAILY[0], 3), (HOURLY[0], 6))}
        yield api, runs
    finally:  # even when a run failed: the other modules find every DAG paused and no run of these
        leave_as_found(api, (DAILY[0], HOURLY[0]), ("customer", "web_analytics"))


def test_backfills_create_one_run_per_interval_and_all_succeed(backfilled):
    _, runs = backfilled
    for (dag_id, start, end), step in ((DAILY, timedelta(days=1)), (HOURLY, timedelta(hours=1))):
        starts = sorted(datetime.fromisoformat(r["data_interval_start"]) for r in runs[dag_id]
                        if r["run_type"] == "backfill")
        expected = [start + i * step for i in range(int((end - start) / step) + 1)]
        assert starts == expected, dag_id


def test_clearing_a_task_reruns_it_and_changes_no_published_row(backfilled):
    api, runs = backfilled
    customer, web = load_registry()["customer"], load_registry()["web_analytics"]
    windows = [(customer, (DAILY[1], DAILY[2] + timedelta(days=1))),
               (web, (HOURLY[1], HOURLY[2] + timedelta(hours=1)))]
    before = {ds.name: _interval_checksum(ds, *w) for ds, w in windows}
    assert all(rows > 0 and rows == keys for rows, keys, _ in before.values()), before

    target = next(r for r in runs[DAILY[0]] if r["run_type"] == "backfill")
    tries = api.tasks(DAILY[0], target["dag_run_id"])["stage_with_spark"]["try_number"]
    api.post(f"/api/v2/dags/{DAILY[0]}/clearTaskInstances", {
        "dry_run": False, "only_failed": False, "reset_dag_runs": True, "include_downstream": True,
        "dag_run_id": target["dag_run_id"], "task_ids": ["stage_with_spark"],
    })

    def rerun_done():
        tis = api.tasks(DAILY[0], target["dag_run_id"])
        states = {t: ti["state"] for t, ti in tis.items()}
        assert "failed" not in states.values(), states
        return tis["stage_with_spark"]["try_number"] > tries and set(states.values()) == {"success"}

    wait("the cleared run to succeed again", rerun_done, poll=5)
    upstream = api.tasks(DAILY[0], target["dag_run_id"])["extract_to_raw"]
    assert upstream["try_number"] == 1  # only the cleared task and its downstream ran again
    after = {ds.name: _interval_checksum(ds, *w) for ds, w in windows}
    assert after == before
    for ds in load_registry().active():
        assert duplicate_keys(ds) == 0, ds.name
