"""The steward page's logic without a database: thresholds in words, what quality/README.md says about each
check, where a dataset stands (published / blocked / nothing ran, and why), the trend's intervals and
gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from c360 import checkdocs, settings, steward, steward_html
from c360.registry import load_registry

QUALITY = settings.PROJECT_DIR / "quality"
PCT = {"metric": "percent", "must_be_less_than": 5, "additional": {"level": "warn", "must_be": 0}}


@pytest.mark.parametrize(("check_type", "spec", "words"), [
    ("missing", {"threshold": PCT}, "blocks at ≥ 5 % of rows; warns at any row"),
    ("invalid", {"threshold": {**PCT, "must_be_less_than": 10}}, "blocks at ≥ 10 % of rows; warns at any row"),
    ("missing", {}, "blocks at any row"),
    ("duplicate", None, "blocks at any row"),
    ("missing", {"threshold": {"must_be_less_than": 10}}, "blocks at ≥ 10 rows"),
    ("invalid", {"threshold": {"metric": "percent", "must_be_less_than_or_equal": 2.5}}, "blocks at > 2.5 % of rows"),
    ("failed_rows", {"expression": "a < b"}, "blocks at any row"),
    ("failed_rows", {"query": "select 1", "threshold": {"level": "warn", "must_be": 0}},
     "warns at any row of its query; never blocks"),
    ("freshness", {"threshold": {"unit": "hour", "level": "warn", "must_be_less_than": 12}},
     "warns when the newest row is ≥ 12 hours old; never blocks"),
    ("freshness", {"threshold": {"unit": "hour", "level": "warn", "must_be_less_than": 168}},
     "warns when the newest row is ≥ 168 hours (7 days) old; never blocks"),
    ("freshness", {"threshold": {"unit": "minute", "must_be_less_than": 30}},
     "blocks when the newest row is ≥ 30 minutes old"),
    ("metric", {"query": "select 1", "threshold": {"level": "warn", "must_be_less_than": 15}},
     "warns when the value is ≥ 15; never blocks"),
    ("metric", {"threshold": {"must_be_greater_than_or_equal": 1, "must_be_less_than_or_equal": 5}},
     "blocks when the value is > 5 or < 1"),
    ("row_count", {}, "blocks when the batch has no rows"),
    ("row_count", {"threshold": {"must_be_greater_than": 1000}}, "blocks when the batch has ≤ 1,000 rows"),
    ("schema", {}, "blocks on a missing, extra or retyped column"),
])
def test_threshold_words(check_type, spec, words):
    assert checkdocs.threshold_words(check_type, spec) == words


def test_every_contract_check_has_thresholds_in_words_and_a_readme_meaning():
    meanings = checkdocs.readme_meanings(QUALITY / "README.md")
    contracts = sorted(p for p in QUALITY.glob("*.yml") if p.name != "accepted_values.yml")
    assert {e.contract_path for e in load_registry().published()} <= set(contracts)  # every published table's
    undescribed = [(p.name, c.name) for p in contracts for c in checkdocs.contract_checks(p, meanings)
                   if not c.meaning]
    assert undescribed == [], "quality/README.md has no row for these checks"
    customer = {c.name: c for c in checkdocs.contract_checks(QUALITY / "customer.yml", meanings)}
    gender = customer["accuracy - gender"]
    assert (gender.type, gender.column, gender.thresholds) == ("invalid", "gender",
                                                                "blocks at ≥ 5 % of rows; warns at any row")
    assert gender.meaning["protects"] == "segment and profile attributes"
    assert gender.meaning["warns when"] == "any value outside list gender (M, F, O, U)"


def test_readme_rows_are_matched_to_the_contracts_check_names():
    meanings = checkdocs.readme_meanings(QUALITY / "README.md")

    def meaning(contract: str, check: str) -> dict[str, str]:
        return checkdocs.meaning_lookup(meanings, contract)(check)

    # "x present / unique" covers both; "r/f/m score 1–5" each letter; a trailing parenthetical is a note
    assert meaning("orders.yml", "order id unique")["blocks when"] == "any NULL or duplicate order_id"
    assert meaning("rfm.yml", "m score 1-5")["why"] == "the scoring and mapping contract"
    assert meaning("segment_membership.yml", "segment type known")["blocks when"] == "any violation"
    assert meaning("orders_enriched.yml", "line amount is quantity times price")["why"] == "arithmetic of the join"
    # the checks every dataset contract has: customer's own row for customer, the shared row elsewhere
    assert meaning("customer.yml", "freshness - newest row before the interval end")["protects"] == "a stalled CRM feed"
    assert meaning("orders.yml", "freshness - newest row before the interval end")["protects"] == "a stalled source"
    # a check of the same name in another contract's table is not borrowed
    assert meaning("orders.yml", "no such check") == {}
    assert "an item without an order" in meaning("order_line_item.yml", "order id present")["why"]
    assert "an item without an order" not in meaning("orders.yml", "order id present").get("why", "")


def test_readme_parser_reads_sections_tables_and_the_outputs_table(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Quality\n\nprose | not a table\n\n"
        "## alpha (`alpha.yml`) — seed\n\n| check | warns when | blocks when | why |\n|---|---|---|---|\n"
        "| a present / unique | — | any NULL or duplicate `a` | keys |\n"
        "| b range | any | ≥ 5 % | because |\n\n"
        "## Checks in every dataset contract\n\n| check | blocks when |\n|---|---|\n| schema matches the registry | drift |\n\n"
        "## Outputs (`o1.yml`, `o2.yml`)\n\n| output | check | blocks when | why |\n|---|---|---|---|\n"
        "| all | schema matches the output table | drift | DDL |\n| o2 | x; y | any | z |\n\n"
        "## No table (`none.yml`)\n\ntext\n")
    m = checkdocs.readme_meanings(readme)
    assert set(m) == {"alpha.yml", checkdocs.EVERY, "o1.yml", "o2.yml"}
    assert m["alpha.yml"]["b range"] == {"warns when": "any", "blocks when": "≥ 5 %", "why": "because"}
    assert m["alpha.yml"]["a present / unique"]["blocks when"] == "any NULL or duplicate a"  # backticks dropped
    assert set(m["o1.yml"]) == {"schema matches the output table"}
    assert set(m["o2.yml"]) == {"schema matches the output table", "x; y"}
    lookup = checkdocs.meaning_lookup(m, "alpha.yml")
    assert lookup("a unique")["why"] == "keys" and lookup("schema matches the registry") == {"blocks when": "drift"}
    assert checkdocs.meaning_lookup(m, "o2.yml")("y") == {"blocks when": "any", "why": "z"}


# ---- where a dataset stands ----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
E = datetime(2026, 11, 23, 1, tzinfo=UTC)
ENTRY = steward.Entry("transactions", "dataset", "transactions_daily", "0 1 * * *", "finance-data",
                      "c360.transactions", QUALITY / "transactions.yml")
OUTPUT = steward.Entry("rfm", "output", "customer_360_daily", "0 0 * * *", "crm", "c360.rfm_history",
                       QUALITY / "rfm.yml", "customer_360")
GOOD = {"interval_end": E - timedelta(days=1), "published_at": NOW - timedelta(hours=30), "score": 88.89}


def _latest(outcome: str, end: datetime = E, warned: int = 0, failed: int = 0, attempt: int = 1) -> dict:
    return {"interval_end": end, "dag_run_id": "scheduled__x", "attempt": attempt, "outcome": outcome,
            "checks_warned": warned, "checks_failed": failed, "published_at": NOW, "rows_published": 1200}


def _run(run_id: str, state: str, triggered_by: str = "timetable", end: datetime = E, failed=()) -> steward.AirflowRun:
    return steward.AirflowRun(run_id, state, triggered_by, "scheduled", end.isoformat(), None, None, list(failed))


def test_ran_and_blocked_says_not_published_and_the_last_good_score():
    state, why = steward.classify(ENTRY, E, _latest("blocked", failed=2, attempt=2), GOOD, None, [], NOW)
    assert state == "blocked"
    assert why == ("The run for the interval ending 2026-11-23 01:00 UTC (attempt 2) failed 2 blocking checks: "
                   "c360.transactions was not published. c360.transactions still holds the last good run's data: "
                   "score 88.89 for the interval ending 2026-11-22 01:00 UTC, published 2026-11-22 09:30 UTC.")
    state, why = steward.classify(ENTRY, E, _latest("blocked", failed=1), None, None, [], NOW)
    assert why.endswith("Nothing of transactions has been published yet.")


def test_ran_and_published_with_or_without_warnings():
    assert steward.classify(ENTRY, E, _latest("published"), GOOD, None, [], NOW)[0] == "published"
    state, why = steward.classify(ENTRY, E, _latest("published", warned=2), GOOD, None, [], NOW)
    assert state == "published_with_warnings" and "2 checks warned" in why and "1,200 rows" in why


def test_passed_but_not_published_names_the_output_that_blocked_the_run():
    state, why = steward.classify(OUTPUT, E, _latest("not_published"), GOOD, None, ["segment_membership"], NOW)
    assert state == "not_published"
    assert "segment_membership failed a blocking check in the same run" in why and "all of its outputs" in why
    af = steward.AirflowDag(True, False, runs={"scheduled__x": _run("scheduled__x", "failed", failed=["publish_table"])})
    assert "failed after the gate (publish_table)" in steward.classify(ENTRY, E, _latest("not_published"), GOOD, af, [],
                                                                        NOW)[1]


def test_nothing_ran_explains_a_paused_dag_and_the_demos_dag_test_run():
    older = _latest("published", end=E - timedelta(days=2))
    af = steward.AirflowDag(True, True, latest_run=_run("manual__2026-11-21", "success", "test", E - timedelta(days=2)))
    state, why = steward.classify(ENTRY, E, older, GOOD, af, [], NOW)
    assert state == "nothing_ran"
    assert why.startswith("Nothing ran for the interval ending 2026-11-23 01:00 UTC: transactions_daily is paused")
    assert "Its latest run (manual__2026-11-21) covered the interval ending 2026-11-21 01:00 UTC and was started " \
           "by dag.test(), not the scheduler: make demo runs each DAG once" in why
    never = steward.classify(ENTRY, E, None, None, steward.AirflowDag(True, True), [], NOW)[1]
    assert "It has never run." in never
    active = steward.classify(ENTRY, E, older, GOOD, steward.AirflowDag(True, False), [], NOW)[1]
    assert "is active: is the scheduler running?" in active
    due = steward.classify(ENTRY, E, older, GOOD, steward.AirflowDag(True, False), [], E + timedelta(minutes=5))[1]
    assert due.startswith("Due:")
    unknown = steward.classify(ENTRY, E, older, GOOD, steward.AirflowDag(False), [], NOW)[1]
    assert "Airflow does not know transactions_daily" in unknown


def test_a_run_of_the_expected_interval_without_a_score_is_running_or_failed_before_the_gate():
    older = _latest("published", end=E - timedelta(days=1))
    running = steward.AirflowDag(True, False, expected_run=_run("scheduled__y", "running"))
    assert steward.classify(ENTRY, E, older, GOOD, running, [], NOW)[0] == "running"
    failed = steward.AirflowDag(True, False, expected_run=_run("scheduled__y", "failed", failed=["extract_to_raw"]))
    state, why = steward.classify(ENTRY, E, older, GOOD, failed, [], NOW)
    assert state == "failed_before_gate" and "(failed: extract_to_raw)" in why and "last good" in why


def test_an_attempt_published_when_the_publish_followed_it_and_no_later_attempt():
    t = NOW - timedelta(hours=1)
    attempts = steward._with_outcomes([
        {"dag_run_id": "r", "attempt": 1, "checks_failed": 1, "scored_at": t, "published_at": t + timedelta(minutes=9)},
        {"dag_run_id": "r", "attempt": 2, "checks_failed": 0, "scored_at": t + timedelta(minutes=5),
         "published_at": t + timedelta(minutes=9)},
        {"dag_run_id": "s", "attempt": 1, "checks_failed": 0, "scored_at": t, "published_at": None},
        {"dag_run_id": "u", "attempt": 1, "checks_failed": 0, "scored_at": t, "published_at": t + timedelta(minutes=1)},
        {"dag_run_id": "u", "attempt": 2, "checks_failed": 0, "scored_at": t + timedelta(minutes=2),
         "published_at": t + timedelta(minutes=1)},
    ])
    assert [(a["dag_run_id"], a["attempt"], a["outcome"]) for a in attempts] == [
        ("r", 1, "blocked"), ("r", 2, "published"), ("s", 1, "not_published"), ("u", 1, "published"),
        ("u", 2, "not_published")]


# ---- the trend -------------------------------------------------------------------------------------------------


def _attempt(end: datetime, score: float, outcome: str, attempt: int = 1) -> dict:
    return {"interval_end": end, "score": score, "outcome": outcome, "attempt": attempt, "dag_run_id": f"r{end:%d}",
            "scored_at": end + timedelta(minutes=attempt)}


def test_trend_intervals_keep_every_attempt_and_leave_gaps():
    day = timedelta(days=1)
    history = [_attempt(E - 3 * day, 100, "published"), _attempt(E - day, 88.89, "published"),
               _attempt(E, 77.78, "blocked", 1), _attempt(E, 100, "published", 2)]
    slots = steward.trend_slots("0 1 * * *", E, history, 6)
    assert [s.end for s in slots] == [E - k * day for k in range(5, -1, -1)]
    assert [len(s.attempts) for s in slots] == [0, 0, 1, 0, 1, 2]
    assert [a["outcome"] for a in slots[-1].attempts] == ["blocked", "published"]  # oldest first
    svg = str(steward_html.trend_svg(slots))
    assert svg.count('class="pt ') == 4 and svg.count('class="pt blocked"') == 1
    assert svg.count('<rect class="gap"') == 3
    assert "3 of 6 intervals scored, 3 without a run, 1 blocked attempt; latest 100" in svg
    assert ">0<" in svg and ">50<" in svg and ">100<" in svg and ">2026-11-18<" in svg and ">2026-11-23<" in svg
    assert svg.count("<polyline") == 1  # the line breaks at the gaps: only the last two intervals are joined


def test_a_long_silence_is_one_break_and_the_history_stays_in_view():
    day = timedelta(days=1)
    old = E - 40 * day
    slots = steward.trend_slots("0 1 * * *", E, [_attempt(old, 90, "published")], 10)
    assert slots[-2].end == old and slots[-2].attempts
    assert slots[-1].skipped == 40 and slots[-1].end == E
    svg = str(steward_html.trend_svg(slots))
    assert "1 of 49 intervals scored, 48 without a run" in svg and "no run for 40 intervals up to" in svg


def test_a_run_of_another_interval_is_shown_where_it_falls():
    odd = E - timedelta(hours=5)  # a manual run whose interval ends off the schedule
    slots = steward.trend_slots("0 1 * * *", E, [_attempt(odd, 50, "not_published")], 3)
    assert [(s.end, s.expected) for s in slots][-2] == (odd, False)


def test_nice_axis_top():
    assert [steward_html.nice_top(v) for v in (0, 0.4, 1.5, 12, 13.8, 21, 48, 240)] == [1, 1, 2, 20, 20, 25, 50, 250]


def test_expected_interval_end_is_the_last_tick_at_or_before_now():
    assert steward.expected_interval_end("0 1 * * *", NOW) == E
    assert steward.expected_interval_end("0 1 * * *", E) == E
    assert steward.expected_interval_end("*/15 * * * *", NOW + timedelta(seconds=20)) == NOW
    assert steward.interval_ends("0 2 * * 1", datetime(2026, 11, 23, 2, tzinfo=UTC), 3) == [
        datetime(2026, 11, d, 2, tzinfo=UTC) for d in (9, 16, 23)]
