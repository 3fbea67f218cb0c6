"""Rerunning the gate and the publish of a run whose batch is gone, on real PostgreSQL, Spark and Soda:
check_quality rebuilds the batch from the run's stage partition, and the published table is unchanged.

The first run of product (dag.test) bootstraps it with a full load, so its publish renames the batch into
place: the batch table no longer exists. Then the DAG's own check_quality and publish_table task functions run
again for that run, with what its load_to_staging returned, as clearing check_quality with its downstream
does on a running Airflow (tests/e2e/test_clear_tasks.py clears every task there).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import run_succeeds, wh

from c360 import generator, lake, warehouse

pytestmark = pytest.mark.integration

DAG_ID = "product_weekly"
LOGICAL = datetime(2026, 11, 23, 2, tzinfo=UTC)  # interval [2026-11-16 02:00, 2026-11-23 02:00)
SCALE = generator.Scale(customers=2_000, days=5, orders_per_day=20, sessions_per_hour=1)


def _checksum(table: str = "c360.product") -> tuple[int, str]:
    return wh(f"select count(*), md5(string_agg(t::text, '|' order by product_id)) from {table} t")[0]


def _loaded(dr) -> dict:
    """What load_to_staging returned in this run (its XCom, as the later tasks read it)."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        row = session.scalars(XComModel.get_many(run_id=dr.run_id, key="return_value", dag_ids=DAG_ID,
                                                 task_ids="load_to_staging")).one()
        return XComModel.deserialize_value(row)


def _task(dagbag, task_id: str, dr, loaded: dict) -> dict:
    """Run the DAG's task function for the run ``dr`` in this process (its body, as the worker runs it)."""
    dag = dagbag.dags[DAG_ID]
    context = {"data_interval_start": dr.data_interval_start, "data_interval_end": dr.data_interval_end,
               "run_id": dr.run_id, "dag": dag, "params": {}}
    return dag.task_dict[task_id].python_callable(loaded, **context)


def _publish_log(run_id: str) -> list[tuple]:
    return wh("select mode, rows_in_batch, rows_published, published_at from meta.publish_log "
              "where dag_run_id = %s", (run_id,))


def _scored_at(run_id: str) -> list[tuple]:
    return wh("select scored_at from quality.dataset_scores where dag_run_id = %s", (run_id,))


def _exists(table: str) -> bool:
    return wh("select to_regclass(%s) is not null", (table,))[0][0]


@pytest.fixture(scope="module")
def published(sources, dagbag):
    return run_succeeds(dagbag.dags[DAG_ID], LOGICAL)


def test_the_published_batch_is_gone(published):
    loaded = _loaded(published)
    assert loaded["mode"] == "full" and loaded["staged_rows"] > 0
    assert not _exists(loaded["batch_table"])
    assert _checksum()[0] == loaded["staged_rows"]


def test_check_quality_rebuilds_the_batch_and_publish_gives_the_same_table(published, dagbag):
    loaded = _loaded(published)
    before, log_before, scored_before = _checksum(), _publish_log(published.run_id), _scored_at(published.run_id)
    gate = _task(dagbag, "check_quality", published, loaded)
    assert gate["score"] is not None and _exists(loaded["batch_table"])  # rebuilt, then gated
    assert _checksum(loaded["batch_table"]) == before
    scored = _scored_at(published.run_id)
    assert len(scored) == 1 and scored[0][0] > scored_before[0][0]  # the run's score replaced, not added
    _task(dagbag, "publish_table", published, loaded)
    assert not _exists(loaded["batch_table"]) and _checksum() == before
    log_after = _publish_log(published.run_id)
    assert len(log_after) == 1 and log_after[0][:3] == log_before[0][:3] == ("full", before[0], before[0])
    assert log_after[0][3] > log_before[0][3]  # published again, logged once


def test_publish_alone_rebuilds_the_batch_and_gives_the_same_table(published, dagbag):
    loaded = _loaded(published)
    before = _checksum()
    assert not _exists(loaded["batch_table"])
    published_rows = _task(dagbag, "publish_table", published, loaded)
    assert published_rows["rows_written"] == before[0] and _checksum() == before
    assert len(_publish_log(published.run_id)) == 1


def test_a_rewritten_stage_partition_is_not_rebuilt(published):
    """A stage partition rewritten since the load (e.g. by another run of the interval) holds rows the gate
    never checked: ensure_batch refuses, naming the task to clear from."""
    from c360 import steps
    from c360.registry import load_registry

    ds = load_registry()["product"]
    loaded = _loaded(published)
    interval = warehouse.Interval(published.data_interval_start, published.data_interval_end, published.run_id, DAG_ID)
    assert steps.ensure_batch(ds, interval, loaded) is True  # gone after the publish: rebuilt
    assert _checksum(loaded["batch_table"]) == _checksum()
    assert steps.ensure_batch(ds, interval, loaded) is False  # there: left as it is
    wh(f"drop table {loaded['batch_table']}")
    stage = lake.local_path(loaded["stage"])
    part = next(stage.glob("part-*.parquet"))
    part.rename(stage / f"part-99999-rewritten{part.name[10:]}")  # the same rows, as another write names them
    with pytest.raises(steps.BatchUnavailable, match="rewritten since load_to_staging loaded it.*clear the run "
                                                     "from load_to_staging"):
        steps.ensure_batch(ds, interval, loaded)
    assert wh("select to_regclass(%s)", (loaded["batch_table"],)) == [(None,)]
