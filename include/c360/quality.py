"""The quality gate: verify a Soda v4 contract on the staged table, record results and the score.

Severity: a check whose fail-level threshold is breached is *failed* and blocks the publish; a check whose
``level: warn`` threshold is breached is *warned* and publishes. The score of a run is
``100 * passed / (passed + warned + failed)`` (checks Soda could not evaluate are counted apart and left
out); the same function computes it everywhere (:func:`score`). Each result records the value its threshold
was evaluated on, in its unit (:func:`_measured`): 12.5 % of rows missing, 14.05 hours since the newest
row; None (not 0) where Soda measured nothing, as for the freshness of an empty batch.
"""

from __future__ import annotations

import logging
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from c360 import pg, settings

if TYPE_CHECKING:
    from c360.registry import Column, Dataset
    from c360.warehouse import Interval

log = logging.getLogger(__name__)

OUTCOMES = {"PASSED": "passed", "WARN": "warned", "FAILED": "failed", "NOT_EVALUATED": "not_evaluated"}


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    column_name: str | None
    outcome: str  # passed | warned | failed | not_evaluated
    measured_value: float | None
    threshold: str | None
    severity: str  # blocking | warning
    # unit of measured_value: "%", "rows", "minutes", "hours", "days", "mismatches"; None for a metric check's
    # own value (its query defines what it is)
    unit: str | None = field(default=None, kw_only=True)
    # what kind of test this is (OpenLineage's assertion classification): not_null, unique, accepted_values,
    # accepted_range, format, freshness, schema, row_count, custom_sql, custom_metric, aggregate, custom
    kind: str | None = field(default=None, kw_only=True)
    # what Soda measured for the check (e.g. missing_count, missing_percent): lineage's quality metrics
    diagnostics: dict = field(default_factory=dict, compare=False, kw_only=True)

    @property
    def measured(self) -> str:
        """The measured value with its unit, for messages: "14.03 hours", "2.5%", "not measured"."""
        return measured_text(self.measured_value, self.unit)


def measured_text(value: float | None, unit: str | None) -> str:
    if value is None:
        return "not measured"
    v = float(value)
    text = str(int(v)) if v.is_integer() else f"{v:.2f}" if abs(v) >= 0.01 else f"{v:.2g}"
    return text + ("%" if unit == "%" else f" {unit}" if unit else "")


class QualityGateFailed(RuntimeError):
    """The verdict on the data: a blocking check failed (bad data; retrying cannot help)."""

    runbook = "runbook-quality-gate-failed"  # the README section an alert names (c360.alerts)


class QualityCheckError(RuntimeError):
    """No verdict: the checks could not run (Soda could not connect or query, an invalid contract or accepted
    value list). Not the data's fault; the task's retries apply."""


def score(results: list[CheckResult]) -> float | None:
    evaluated = [r for r in results if r.outcome != "not_evaluated"]
    if not evaluated:
        return None
    return round(100.0 * sum(r.outcome == "passed" for r in evaluated) / len(evaluated), 2)


def _data_source_yaml(name: str) -> str:
    p = pg.conn_params(settings.WAREHOUSE_CONN_ID)
    import yaml

    return yaml.safe_dump({
        "type": "postgres",
        "name": name,
        "connection": {
            "host": p.get("host", "localhost"),
            "port": p.get("port", 5432),
            "database": p["dbname"],
            "user": p.get("user", "postgres"),
            "password": p.get("password", ""),
        },
    })


# check types whose threshold is on a count of rows, or on its percent of the rows tested (``metric: percent``)
_COUNTED = ("missing", "invalid", "duplicate", "failed_rows")
_TIME_UNITS = {"minute": "minutes", "hour": "hours", "day": "days"}


def _check_yaml(check) -> dict:
    """The check's own YAML (threshold, metric, unit, valid_* keys) from the definition Soda reports: a contract
    holding that one check, as ``{type: {...}}`` or as its keys alone."""
    import yaml

    contract = yaml.safe_load(check.definition or "") or {}
    holders = [c for col in contract.get("columns") or [] for c in col.get("checks") or []] + \
        list(contract.get("checks") or [])
    for holder in holders:
        if isinstance(holder, dict):
            return (holder[check.type] or {}) if check.type in holder else holder
    return {}


def _number(value) -> float | None:
    """A measured number as float (a metric query on a numeric column gives a Decimal)."""
    return float(value) if isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool) else None


def _measured(result) -> tuple[float | None, str | None]:
    """(value, unit) of the metric the check's threshold is evaluated on; the value is None where Soda measured
    nothing (freshness of an empty batch, a schema Soda could not read, a check it could not evaluate)."""
    value, unit = _threshold_metric(result)
    return (value if result.outcome.name in ("PASSED", "WARN", "FAILED") else None), unit


def _threshold_metric(result) -> tuple[float | None, str | None]:
    check = result.check
    values = result.diagnostic_metric_values or {}
    threshold = _check_yaml(check).get("threshold") or {}
    if check.type in _COUNTED:
        percent = threshold.get("metric") == "percent"
        key = f"{check.type}_{'percent' if percent else 'count'}"
        return _number(values.get(key)), "%" if percent else "rows"
    if check.type == "freshness":
        unit = getattr(result, "unit", None) or threshold.get("unit") or "hour"
        return _number(values.get(f"freshness_in_{unit}s")), _TIME_UNITS.get(unit, unit)
    if check.type == "row_count":
        return _number(result.threshold_value), "rows"
    if check.type == "schema":
        if not getattr(result, "actual_columns", None):
            return None, "mismatches"  # Soda could not read the table's columns
        mismatches = (len(result.expected_column_names_not_actual) + len(result.actual_column_names_not_expected)
                      + len(result.column_data_type_mismatches) + bool(result.are_columns_out_of_order))
        return float(mismatches), "mismatches"
    return _number(result.threshold_value), None  # metric, aggregate: the check's own value


def _kind(check) -> str:
    """OpenLineage's assertion classification of a Soda check."""
    if check.type == "invalid":
        spec = _check_yaml(check)
        if {"valid_values", "invalid_values", "valid_reference_data"} & spec.keys():
            return "accepted_values"
        if {"valid_format", "valid_regex", "invalid_format", "invalid_regex"} & spec.keys():
            return "format"
        return "accepted_range"  # valid_min, valid_max, valid_length and the like
    return {"missing": "not_null", "duplicate": "unique", "failed_rows": "custom_sql",
            "metric": "custom_metric"}.get(check.type, check.type)


def _threshold_text(check) -> str | None:
    parts = [str(t).replace("\n", " ") for t in (check.threshold, check.warn_threshold) if t is not None]
    return "; ".join(parts) or None


def contract_for(contract_path: Path, table: str | None = None, columns: tuple[Column, ...] | None = None) -> str:
    """The contract text Soda verifies: the file's checks, the table's columns and types from the registry (the
    schema check compares against them; ``columns`` or, by default, the registry entry whose contract this
    is), its accepted value lists filled in (:mod:`c360.accepted_values`), and aimed at ``schema.table`` (the
    run's batch table) instead of its declared dataset when given."""
    import yaml

    from c360 import accepted_values

    try:
        contract = accepted_values.fill(yaml.safe_load(contract_path.read_text()), contract_path)
    except accepted_values.AcceptedValuesError as exc:
        raise QualityCheckError(str(exc)) from None
    if columns is None:
        from c360.registry import load_registry

        columns = load_registry().contract_columns(contract_path)
    contract["columns"] = with_registry_columns(contract_path, contract.get("columns") or [], columns)
    if table is None:
        return yaml.safe_dump(contract, sort_keys=False)
    declared = contract.get("dataset", "")
    prefix = f"{settings.WAREHOUSE_CONN_ID}/"
    if not declared.startswith(prefix):
        raise QualityCheckError(f"{contract_path}: dataset {declared!r} must start with {prefix!r}")
    database = declared[len(prefix):].split("/", 1)[0]
    contract["dataset"] = f"{prefix}{database}/{table.replace('.', '/')}"
    return yaml.safe_dump(contract, sort_keys=False)


def with_registry_columns(contract_path: Path, checked: list[dict], columns: tuple[Column, ...]) -> list[dict]:
    """Soda's column list: every registry column in table order with its type (``data_type``), carrying the
    checks the contract file declares for it. A contract file holds checks only: a ``data_type`` there, or a
    column the registry does not declare, is an error naming the file."""
    declared = {c.name for c in columns}
    for i, entry in enumerate(checked):
        where = f"{contract_path}: columns[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise QualityCheckError(f"{where} has no name")
        if entry["name"] not in declared:
            raise QualityCheckError(f"{where}: column {entry['name']!r} is not in the registry's columns of "
                                    f"this table (include/c360/datasets.yaml)")
        if "data_type" in entry:
            raise QualityCheckError(f"{where}: column {entry['name']!r} declares a data_type; types come from "
                                    f"the registry (include/c360/datasets.yaml), remove it from the contract")
    by_name = {e["name"]: e for e in checked}
    return [{"name": c.name, "data_type": c.types.soda, **{k: v for k, v in by_name.get(c.name, {}).items()
                                                             if k != "name"}} for c in columns]


def verify(contract_path: Path, table: str | None = None, now: datetime | None = None,
           columns: tuple[Column, ...] | None = None) -> list[CheckResult]:
    """Run the contract against the warehouse (on ``table`` if given) and return one result per check.

    ``now`` (the run's interval end) is what freshness checks measure against, so a backfilled interval is
    judged as of its own time. Queries in a contract name the checked table as ``${var.BATCH}``; accepted
    value lists are ``${var.ACCEPTED_<name>}``, filled in by :func:`contract_for`.
    """
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    import yaml
    from soda_core.contracts import verify_contract_locally

    with tempfile.TemporaryDirectory(prefix="c360-soda-") as tmp:
        ds_file = Path(tmp) / "data_source.yml"
        ds_file.write_text(_data_source_yaml(settings.WAREHOUSE_CONN_ID))
        ds_file.chmod(0o600)  # holds the warehouse password when one is set
        target = Path(tmp) / contract_path.name
        target.write_text(contract_for(contract_path, table, columns))
        batch = table or yaml.safe_load(contract_path.read_text())["dataset"].split("/", 2)[2].replace("/", ".")
        session = verify_contract_locally(
            data_source_file_path=str(ds_file), contract_file_path=str(target), variables={"BATCH": batch},
            data_timestamp=(now or datetime.now(UTC)).astimezone(UTC).isoformat())
    if session.has_errors:
        raise QualityCheckError(f"Soda could not verify {contract_path}: {session.get_errors_str()}")
    results: list[CheckResult] = []
    for contract_result in session.contract_verification_results:
        for r in contract_result.check_results:
            check = r.check
            fail_level = check.threshold is None or getattr(check.threshold, "level", "fail") == "fail"
            outcome = OUTCOMES.get(r.outcome.name, "not_evaluated")
            if outcome == "failed" and not fail_level:
                # a check whose only threshold is level warn can warn, never block (Soda also reports FAILED
                # when it cannot measure, e.g. freshness of an empty batch: a quiet interval is no outage)
                outcome = "warned"
            value, unit = _measured(r)
            results.append(CheckResult(
                check_name=check.name or check.relative_path,
                column_name=check.column_name,
                outcome=outcome,
                measured_value=value,
                threshold=_threshold_text(check),
                # what this result can do to the run: a warned outcome never blocks
                severity="blocking" if fail_level and outcome != "warned" else "warning",
                unit=unit,
                kind=_kind(check),
                diagnostics={k: v for k, v in (r.diagnostic_metric_values or {}).items()
                             if isinstance(v, int | float) and not isinstance(v, bool)},
            ))
    if not results:
        raise QualityCheckError(f"Soda returned no check results for {contract_path}")
    return results


def save_results(ds_name: str, interval: Interval, results: list[CheckResult]) -> float | None:
    """Replace this run's rows in quality.check_results and quality.dataset_scores, and add them as one more
    attempt of the run to quality.score_history and quality.check_history (one transaction).

    The first two tables answer "what does this run say now" (a rerun replaces them); the history keeps
    every attempt, so a blocked attempt stays visible after a rerun passes (the steward page's trend).
    """
    import json

    from c360.warehouse import bootstrap, sql_file

    s = score(results)
    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "warned", "failed", "not_evaluated")}
    key = {"dataset": ds_name, "run_id": interval.run_id}
    dag = {"dag_id": interval.dag_id or None}
    rows = [{**key, **dag, "start": interval.start, "end": interval.end, "check": r.check_name,
             "column": r.column_name, "outcome": r.outcome, "value": r.measured_value,
             "threshold": r.threshold, "severity": r.severity, "unit": r.unit} for r in results]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        bootstrap(conn)
        conn.execute(sql_file("quality/delete_run.sql"), key)
        with conn.cursor() as cur:
            cur.executemany(sql_file("quality/insert_check.sql"), rows)
        conn.execute(sql_file("quality/insert_score.sql"), {
            **key, **dag, "start": interval.start, "end": interval.end, "score": s, **counts,
        })
        (attempt,) = conn.execute(sql_file("quality/insert_score_history.sql"), {
            **key, **dag, "start": interval.start, "end": interval.end, "score": s, **counts,
            "try_number": _try_number(),
        }).fetchone()
        with conn.cursor() as cur:
            cur.executemany(sql_file("quality/insert_check_history.sql"), [
                {**row, "attempt": attempt, "unit": getattr(r, "unit", None),
                 "diagnostics": json.dumps(r.diagnostics) if r.diagnostics else None}
                for row, r in zip(rows, results, strict=True)
            ])
    return s


def _try_number() -> int | None:
    """The Airflow try of the running task (None outside a task, e.g. a test recording results)."""
    try:
        from airflow.sdk import get_current_context

        return int(get_current_context()["ti"].try_number)
    except (RuntimeError, KeyError, AttributeError, TypeError):  # no task is running in this process
        return None


def platform_checks(ds: Dataset, loaded: dict) -> list[CheckResult]:
    """Checks the platform measures itself, beside the contract's: what Soda cannot see in the batch.

    * source rows dated in the future (watermark after the extract's clock): in no interval yet, so not in
      this batch; they warn every run until an interval covers them, so they are never silently missing;
    * volume of a landing-file source (web analytics): an hour whose export files hold no line warns.
    """
    results = []
    if loaded.get("future_rows") is not None:
        n = loaded["future_rows"]
        results.append(CheckResult(
            check_name="source rows dated in the future", column_name=ds.source.watermark,
            outcome="warned" if n else "passed", measured_value=float(n),
            threshold="warn when any source row is dated after the extract time (+5 min)", severity="warning",
            unit="rows", kind="custom"))
    if ds.source.system == "ga_export" and loaded.get("raw_rows") is not None:
        n = loaded["raw_rows"]
        results.append(CheckResult(
            check_name="volume - landing files hold rows", column_name=None,
            outcome="passed" if n else "warned", measured_value=float(n),
            threshold="warn when the interval's export files hold no line", severity="warning",
            unit="rows", kind="row_count"))
    return results


@dataclass(frozen=True)
class Gated:
    """One table's gate: the published table the batch would become, the batch, what the checks found."""

    name: str  # the dataset or derived output: its scores are recorded under this name
    table: str
    batch: str
    results: list[CheckResult]
    score: float | None
    rows: int | None = None

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome == "failed"]


def gate(name: str, table: str, contract_path: Path, batch: str, interval: Interval, rows: int | None = None,
         extra: list[CheckResult] | tuple[CheckResult, ...] = (), columns: tuple[Column, ...] | None = None
         ) -> Gated:
    """Verify the contract on the batch (plus ``extra`` results the platform measured itself:
    :func:`platform_checks`), save the results and score (:func:`save_results`) and log every warning and
    blocking check. Raises nothing on bad data: the caller records the gate's lineage, then :func:`enforce`."""
    results = verify(contract_path, batch, interval.end, columns) + list(extra)
    s = save_results(name, interval, results)
    for r in results:
        if r.outcome == "warned":
            log.warning("quality warning %s: %s measured %s (%s)", name, r.check_name, r.measured, r.threshold)
    log_blocking(name, [r for r in results if r.outcome == "failed"])
    return Gated(name, table, batch, results, s, rows)


def enforce(owner: str, gated: list[Gated], run_id: str) -> None:
    """Raise :class:`QualityGateFailed` when any gate of ``owner``'s run has a blocking failure: nothing of the
    run is published (a derived product publishes all its outputs or none)."""
    failed = [(g.name, r) for g in gated for r in g.failed]
    if failed:
        unchanged = gated[0].table if len(gated) == 1 else f"every output ({', '.join(g.table for g in gated)})"
        raise QualityGateFailed(gate_failure_message(owner, failed, unchanged, run_id))


def summary(g: Gated) -> dict:
    return {"score": g.score, "passed": sum(r.outcome == "passed" for r in g.results),
            "warned": sum(r.outcome == "warned" for r in g.results)}


def gate_failure_message(name: str, failed: list[tuple[str, CheckResult]], unchanged: str, run_id: str) -> str:
    """The message of a failed gate, in short lines: the Airflow log view shows an exception as one summary
    line per message line, clipped at the panel's width. First what happened, then what was left as it was,
    one line per blocking check (its threshold indented below), then where to look. Each blocking check is
    also logged on its own line before the gate raises (:func:`log_blocking`)."""
    n = len(failed)
    lines = [f"{name}: {n} blocking check{'s' if n != 1 else ''} failed; not published", f"{unchanged} is left as it was."]
    for where, r in failed:
        lines.append(f"  - {'' if where == name else where + ': '}{r.check_name}: measured {r.measured}")
        if r.threshold:
            lines.append(f"      threshold: {r.threshold}")
    lines += [f"Results: quality.check_results, dag_run_id '{run_id}'.",
              "See the Data quality page, and README 'Runbook: quality gate failed'."]
    return "\n".join(lines)


def log_blocking(name: str, failed: list[CheckResult]) -> None:
    for r in failed:
        log.error("quality gate: %s blocked by %s, measured %s", name, r.check_name, r.measured)
