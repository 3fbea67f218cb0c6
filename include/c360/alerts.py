"""On-call alerts: one message per failed task, through a pluggable notifier.

The message names the DAG, task, data interval, try number, log URL and the README runbook section to
follow. ``C360_NOTIFIER`` selects the notifier: ``log`` (default: an ERROR log line, which the task log and
any log shipper pick up) or a dotted path to an Airflow ``BaseNotifier`` subclass taking ``message=``.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

log = logging.getLogger("c360.alerts")

RUNBOOK = {
    "wait_for_inputs": "README.md#runbook-inputs-not-published",
    "export_inputs": "README.md#runbook-source-extract-failed",
    "build_with_spark": "README.md#runbook-spark-stage-failed",
    "publish_outputs": "README.md#runbook-publish-failed",
    "extract_to_raw": "README.md#runbook-source-extract-failed",
    "stage_with_spark": "README.md#runbook-spark-stage-failed",
    "load_to_staging": "README.md#runbook-load-failed",
    "check_quality": "README.md#runbook-quality-gate-failed",
    "publish_table": "README.md#runbook-publish-failed",
}


def failure_message(context: dict[str, Any]) -> str:
    ti = context["ti"]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    return (
        f"c360 task failed: dag={ti.dag_id} task={ti.task_id} interval=[{start}, {end}) "
        f"try={ti.try_number} log={getattr(ti, 'log_url', '')} "
        f"runbook={RUNBOOK.get(ti.task_id, 'README.md#runbook')} error={context.get('exception')!r}"
    )


def notify_failure(context: dict[str, Any]) -> None:
    message = failure_message(context)
    target = os.environ.get("C360_NOTIFIER", "log")
    if target == "log":
        log.error(message)
        return
    module, _, name = target.rpartition(".")
    notifier_cls = getattr(importlib.import_module(module), name)
    notifier_cls(message=message).notify(context)
