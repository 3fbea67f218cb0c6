"""On-call alerts: the message names what on-call needs; the notifier is pluggable."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from airflow.sdk import BaseNotifier

from c360 import alerts

SENT: list[str] = []


class ListNotifier(BaseNotifier):
    """A real notifier (Airflow's base class) that keeps its messages, standing in for Slack or e-mail."""

    template_fields = ("message",)

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def notify(self, context):
        SENT.append(self.message)


def _context(task_id="stage_with_spark"):
    ti = SimpleNamespace(dag_id="orders_every_15_minutes", task_id=task_id, try_number=3,
                         log_url="http://127.0.0.1:8080/dags/orders_every_15_minutes/runs/r1/tasks/x")
    return {"ti": ti, "data_interval_start": datetime(2026, 11, 20, 12, 45, tzinfo=UTC),
            "data_interval_end": datetime(2026, 11, 20, 13, tzinfo=UTC), "exception": RuntimeError("boom")}


def test_message_names_dag_task_interval_try_log_and_runbook():
    msg = alerts.failure_message(_context())
    for part in ("dag=orders_every_15_minutes", "task=stage_with_spark", "2026-11-20 12:45:00+00:00",
                 "2026-11-20 13:00:00+00:00", "try=3", "log=http://127.0.0.1:8080/dags/",
                 "runbook=README.md#runbook-spark-stage-failed", "boom"):
        assert part in msg, part


def test_every_task_has_a_runbook_section_in_the_readme(dagbag):
    from c360 import settings

    readme = (settings.PROJECT_DIR / "README.md").read_text().lower()
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            anchor = alerts.RUNBOOK[task.task_id].split("#", 1)[1]
            heading = anchor.replace("-", " ")
            assert f"### {heading}" in readme.replace(":", ""), anchor


def test_default_notifier_logs_an_error(monkeypatch, caplog):
    monkeypatch.delenv("C360_NOTIFIER", raising=False)
    with caplog.at_level(logging.ERROR, logger="c360.alerts"):
        alerts.notify_failure(_context("check_quality"))
    assert "runbook=README.md#runbook-quality-gate-failed" in caplog.text


def test_notifier_is_pluggable(monkeypatch):
    monkeypatch.setenv("C360_NOTIFIER", f"{__name__}.ListNotifier")
    SENT.clear()
    alerts.notify_failure(_context("publish_table"))
    assert len(SENT) == 1 and "task=publish_table" in SENT[0]
