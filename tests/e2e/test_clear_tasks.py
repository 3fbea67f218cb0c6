"""End to end on a running Airflow: clearing any task of a published dataset run, with its downstream tasks,
reruns it to the same published table; so does clearing the whole run.

transactions_daily is unpaused on a warehouse without c360.transactions, so the scheduler's run of its latest
interval bootstraps it with a full load: that publish renames the batch table into place. Each task is then
cleared in turn through the REST API, from the last to the first (so the gate and the publish of a run whose
batch is gone run first, on the full path; clearing extract_to_raw makes the run an incremental upsert, since
the table exists by then), and the whole run last. After each, the run succeeds, exactly the cleared tasks ran
again (once), the published table's checksum is unchanged, it has no duplicate key, and meta.publish_log holds
one row for the run.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers import duplicate_keys, key_checksum, load_sources, wh

from c360 import pg, settings, steps, warehouse
from c360.registry import load_registry

from .conftest import SCALE, Api, leave_as_found, wait

pytestmark = pytest.mark.e2e

DATASET = "transactions"
DAG_ID = load_registry()[DATASET].dag_id
TASKS = ["extract_to_raw", "stage_with_spark", "load_to_staging", "check_quality", "publish_table"]


def _log_tail(api: Api, run_id: str, ti: dict, lines: int = 30) -> str:
    try:
        log = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                      f"{ti['try_number']}")
        content = log.get("content", [])
        text = [c.get("event", str(c)) if isinstance(c, dict) else str(c) for c in content]
        return "\n".join(text[-lines:])
    except AssertionError as e:  # the API could not serve the log: say so instead of hiding the failure
        return f"(log unavailable: {e})"


def _finished(api: Api, run_id: str, tries_before: dict[str, int], cleared: set[str]):
    """The run's task instances once every task succeeded again; fails at once on a failed (or retrying) task."""
    tis = api.tasks(DAG_ID, run_id)
    states = {t: ti["state"] for t, ti in tis.items()}
    bad = [ti for ti in tis.values() if ti["state"] in ("failed", "up_for_retry", "upstream_failed")]
    if bad:
        raise AssertionError(f"{DAG_ID} {run_id}: {states}\n" + "\n".join(
            f"--- {ti['task_id']} try {ti['try_number']}:\n{_log_tail(api, run_id, ti)}" for ti in bad))
    rerun = all(tis[t]["try_number"] > tries_before.get(t, 0) for t in cleared)
    if rerun and set(states.values()) == {"success"}:
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        return tis if run["state"] == "success" else None
    return None


def _checksum(ds, end: datetime) -> tuple[int, int, str]:
    """``key_checksum`` of the published rows up to the run's interval end (a later interval published
    meanwhile, e.g. the scheduler's next run, adds rows only after it)."""
    return key_checksum(ds, ds.source.watermark, end=end)


@pytest.fixture(scope="module")
def published_run(airflow):
    """The scheduler's run of transactions_daily's latest interval, succeeded: a bootstrap full publish."""
    api = airflow
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        loaded = conn.execute("select to_regclass('public.transactions') is not null").fetchone()[0]
    if not loaded:  # this module alone: load the sources the backfill module would have
        load_sources(SCALE)
    ds = load_registry()[DATASET]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        # the first run bootstraps: a full load (cascade: the governed roles' views of it go too, recreated by it)
        conn.execute(f"drop table if exists {ds.output.table} cascade")
    assert not api.runs(DAG_ID), f"{DAG_ID} ran before this module: its first run must be the bootstrap"
    api.patch(f"/api/v2/dags/{DAG_ID}?update_mask=is_paused", {"is_paused": False})
    try:
        run = wait(f"{DAG_ID}'s scheduled run", lambda: next(iter(api.runs(DAG_ID)), None), timeout=180)
        tis = wait(f"{DAG_ID} {run['dag_run_id']} to succeed",
                   lambda: _finished(api, run["dag_run_id"], {}, set(TASKS)))
        end = datetime.fromisoformat(run["data_interval_end"])
        assert wh("select mode from meta.publish_log where dag_run_id = %s", (run["dag_run_id"],)) == [("full",)]
        yield api, run, tis, end
    finally:  # the steward page's module seeds transactions' latest interval itself
        leave_as_found(api, [DAG_ID], [DATASET])


# cleared from the last task to the first: the batch of the full publish is gone for the first four
STEPS = [(task, "full") for task in reversed(TASKS[1:])] + [("extract_to_raw", "incremental"), (None, "incremental")]


def test_clearing_any_task_or_the_run_republishes_the_same_table(published_run):
    api, run, tis, end = published_run
    run_id = run["dag_run_id"]
    ds = load_registry()[DATASET]
    before = _checksum(ds, end)
    start = datetime.fromisoformat(run["data_interval_start"])
    batch = steps.staging_table(DAG_ID, warehouse.Interval(start, end, run_id))
    assert before[0] > 0 and before[0] == before[1], before
    for task, mode in STEPS:
        tries = {t: ti["try_number"] for t, ti in api.tasks(DAG_ID, run_id).items()}
        if task is None:  # the whole run, as "Clear" on the run in the UI
            cleared = set(TASKS)
            api.post(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/clear", {"dry_run": False, "only_failed": False})
        else:
            cleared = set(TASKS[TASKS.index(task):])
            api.post(f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
                "dry_run": False, "only_failed": False, "include_downstream": True, "reset_dag_runs": True,
                "dag_run_id": run_id, "task_ids": [task]})
        what = f"clearing {task or 'the whole run'}"
        after = wait(f"{DAG_ID} {run_id} to succeed after {what}",
                     lambda c=cleared, t=tries: _finished(api, run_id, t, c))
        ran = {t: after[t]["try_number"] - tries[t] for t in TASKS}
        assert ran == {t: int(t in cleared) for t in TASKS}, (what, ran)  # the cleared tasks, once each
        assert _checksum(ds, end) == before, what
        assert duplicate_keys(ds) == 0, what
        log = wh("select mode, rows_in_batch from meta.publish_log where dataset = %s and dag_run_id = %s",
                 (DATASET, run_id))
        assert len(log) == 1 and log[0][0] == mode, (what, log)
        assert wh("select to_regclass(%s)", (batch,)) == [(None,)], what  # consumed by the publish again
