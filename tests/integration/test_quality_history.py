"""Quality results keep every attempt (real PostgreSQL): a rerun replaces the run's rows in
quality.check_results / quality.dataset_scores and adds an attempt to quality.score_history /
quality.check_history, so a blocked attempt is still there after a rerun passes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import wh

from c360 import pg, quality, settings
from c360.warehouse import Interval, sql_file

pytestmark = pytest.mark.integration

DS = "history_test"  # a dataset name no other module records
RUN = Interval(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC),
               "scheduled__2026-11-20T00:00:00+00:00", "history_test_daily")


def _result(name: str, outcome: str, value: float, diagnostics: dict | None = None) -> quality.CheckResult:
    return quality.CheckResult(name, "amount", outcome, value, "level: fail must be: 0",
                               "blocking" if outcome != "warned" else "warning", diagnostics=diagnostics or {})


def test_a_rerun_replaces_the_run_and_adds_an_attempt(platform):
    blocked = [_result("amount valid", "failed", 12.0, {"invalid_count": 24, "check_rows_tested": 200}),
               _result("id present", "passed", 0.0)]
    assert quality.save_results(DS, RUN, blocked) == 50.0
    assert quality.save_results(DS, RUN, [_result("amount valid", "passed", 0.0), _result("id present", "passed", 0.0)]) == 100

    # the run's current results: the latest attempt only
    assert wh("select score, checks_failed from quality.dataset_scores where dataset = %s", (DS,)) == [(100, 0)]
    assert wh("select check_name, outcome from quality.check_results where dataset = %s order by 1", (DS,)) == [
        ("amount valid", "passed"), ("id present", "passed")]
    # every attempt
    assert wh("select attempt, try_number, score, checks_failed from quality.score_history where dataset = %s "
              "order by attempt", (DS,)) == [(1, None, 50, 1), (2, None, 100, 0)]
    rows = wh("select attempt, check_name, outcome, measured_value, diagnostics from quality.check_history "
              "where dataset = %s order by attempt, check_name", (DS,))
    assert [(a, c, o) for a, c, o, _, _ in rows] == [
        (1, "amount valid", "failed"), (1, "id present", "passed"), (2, "amount valid", "passed"),
        (2, "id present", "passed")]
    assert rows[0][3:] == (12.0, {"invalid_count": 24, "check_rows_tested": 200})
    assert rows[1][4] is None  # nothing measured beside the value


def test_results_recorded_before_the_history_existed_become_attempt_one(platform):
    old = Interval(RUN.start, RUN.end, "scheduled__old", RUN.dag_id)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(sql_file("warehouse/bootstrap.sql"))
        # a warehouse from before: its runs have current results and no history
        conn.execute("drop table quality.score_history, quality.check_history")
        conn.execute(sql_file("quality/insert_check.sql"), {
            "dataset": f"{DS}_old", "run_id": old.run_id, "dag_id": old.dag_id, "start": old.start, "end": old.end,
            "check": "id present", "column": "id", "outcome": "failed", "value": 3.0, "threshold": "t",
            "severity": "blocking", "unit": "rows"})
        conn.execute(sql_file("quality/insert_score.sql"), {
            "dataset": f"{DS}_old", "run_id": old.run_id, "dag_id": old.dag_id, "start": old.start, "end": old.end,
            "score": 0, "passed": 0, "warned": 0, "failed": 1, "not_evaluated": 0})
    for _ in range(2):  # bootstrap runs before every record; the backfill happens once
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            conn.execute(sql_file("warehouse/bootstrap.sql"))
    scores = wh("select dataset, attempt, score from quality.score_history order by dataset, attempt")
    assert (f"{DS}_old", 1, 0) in scores and len(scores) == len(set(scores))
    assert wh("select attempt, outcome from quality.check_history where dataset = %s", (f"{DS}_old",)) == [(1, "failed")]
    # the next attempt of that run is attempt 2
    quality.save_results(f"{DS}_old", old, [_result("id present", "passed", 0.0)])
    assert wh("select attempt, score from quality.score_history where dataset = %s order by 1", (f"{DS}_old",)) == [
        (1, 0), (2, 100)]
    assert wh("select count(*) from quality.check_history where dataset = %s", (f"{DS}_old",)) == [(2,)]
