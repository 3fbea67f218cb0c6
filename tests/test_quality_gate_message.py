"""The message of a failed quality gate, as the Airflow log view shows it: one summary line per message line,
clipped at the panel's width (an exception of one long line showed only its start)."""

from __future__ import annotations

from c360 import quality


def test_a_failed_gate_says_what_happened_on_a_short_first_line_then_each_check_on_its_own():
    failed = [quality.CheckResult(f"a check with a long descriptive name number {i}", "col", "failed", 12.5 + i,
                                  "level: fail must be less than: 5; level: warn must be: 0", "blocking", unit="%")
              for i in range(8)]
    message = quality.gate_failure_message("transactions", [("transactions", r) for r in failed],
                                           "c360.transactions", "scheduled__2026-11-22T01:00:00+00:00")
    lines = message.splitlines()
    assert lines[:2] == ["transactions: 8 blocking checks failed; not published",
                         "c360.transactions is left as it was."]
    assert lines[2:18] == [line for r in failed for line in (
        f"  - {r.check_name}: measured {r.measured}", f"      threshold: {r.threshold}")]
    assert lines[18:] == ["Results: quality.check_results, dag_run_id 'scheduled__2026-11-22T01:00:00+00:00'.",
                          "See the Data quality page, and README 'Runbook: quality gate failed'."]
    assert max(len(line) for line in lines) <= 90  # what the log view shows before it clips
    outputs = quality.gate_failure_message("customer_360", [("rfm", failed[0])], "every output", "r").splitlines()
    assert outputs[0] == "customer_360: 1 blocking check failed; not published"
    assert outputs[2] == "  - rfm: a check with a long descriptive name number 0: measured 12.50%"
