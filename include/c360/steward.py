"""The data steward's quality page: a FastAPI app mounted in the Airflow API server by
``plugins/c360_steward.py`` (menu entry "Data quality" in the Airflow UI, an iframe).

Pages (HTML, server-rendered; links between them navigate inside the iframe, and Airflow 3.3 mirrors the
frame's path into the address bar, so every page can be bookmarked):

* ``GET /c360-quality/``                                  every dataset and output at a glance
* ``GET /c360-quality/datasets/{name}``                   its state, score history (every attempt), runs, checks
* ``GET /c360-quality/datasets/{name}/runs/{run_id}``     one run: its attempts, checks, publish, quarantine
* ``GET /c360-quality/datasets/{name}/checks/{check}``    one check over time

JSON: ``/api/datasets``, ``/api/datasets/{name}/scores``, ``/api/datasets/{name}/checks/{check}``; the
schema at ``/openapi.json`` (Swagger UI ``/docs``, ReDoc ``/redoc``). Every route, those included, requires an
authenticated Airflow user (a bearer token or the UI's session cookie): 401 otherwise.

Where a dataset stands is read from ``quality.score_history`` (every attempt of every run: a rerun adds an
attempt, so a blocked attempt stays in the history), ``meta.publish_log`` (what published), the lake's
quarantine partitions (row counts from Parquet footers) and Airflow's metadata (runs, paused DAGs), and is
one of :data:`STATES`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from c360 import pg, settings

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

URL_PREFIX = "/c360-quality"  # where the API server mounts the app
URL_ROUTE = "c360-quality"  # the UI's route of the menu entry: /plugin/c360-quality

# What a steward sees first: where the latest interval the schedule expects stands.
STATES = {
    "published": "published",
    "published_with_warnings": "published with warnings",
    "blocked": "blocked: not published",
    "not_published": "passed, not published",
    "running": "running",
    "failed_before_gate": "failed before the quality gate",
    "nothing_ran": "nothing ran",
}
ATTENTION = {"blocked", "not_published", "failed_before_gate", "nothing_ran"}


@dataclass(frozen=True)
class Entry:
    """One quality-scored dataset (a source dataset or a derived output) and the DAG that scores it."""

    name: str
    kind: str  # dataset | output
    dag_id: str
    schedule: str
    owner: str
    table: str
    contract_path: Path
    product: str | None = None  # the derived product an output belongs to (it publishes all or none)


def catalogue() -> list[Entry]:
    from c360.registry import load_registry

    registry = load_registry()
    entries = [Entry(ds.name, "dataset", ds.dag_id, ds.cadence.schedule, ds.owner, ds.output.table,
                     ds.contract_path) for ds in registry.active()]
    for d in registry.derived.values():
        entries += [Entry(o.name, "output", d.dag_id, d.cadence.schedule, d.owner, o.table, o.contract_path, d.name)
                    for o in d.outputs]
    return entries


def expected_interval_end(schedule: str, now: datetime) -> datetime:
    """End of the latest interval that should have run by ``now`` (the last cron tick at or before it)."""
    from croniter import croniter

    naive = now.astimezone(UTC).replace(tzinfo=None)
    if croniter.match(schedule, naive):
        return naive.replace(second=0, microsecond=0, tzinfo=UTC)
    return croniter(schedule, naive).get_prev(datetime).replace(tzinfo=UTC)


def interval_ends(schedule: str, last: datetime, n: int) -> list[datetime]:
    """The ``n`` interval ends of ``schedule`` up to ``last`` (a tick), oldest first."""
    from croniter import croniter

    it = croniter(schedule, last.astimezone(UTC).replace(tzinfo=None))
    ends = [last]
    while len(ends) < n:
        ends.append(it.get_prev(datetime).replace(tzinfo=UTC))
    return ends[::-1]


def _sql(name: str):
    from c360.warehouse import sql_file

    return sql_file(f"steward/{name}")


def _has_history(conn) -> bool:
    return conn.execute("select to_regclass('quality.score_history') is not null").fetchone()[0]


def when(value: datetime | str | None) -> str:
    """A timestamp for people: ``2026-11-21 00:00 UTC``."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---- Airflow's view: paused DAGs, the runs that exist -------------------------------------------------------


@dataclass
class AirflowRun:
    run_id: str
    state: str
    triggered_by: str | None
    run_type: str | None
    interval_end: str | None
    start_date: str | None
    end_date: str | None
    failed_tasks: list[str] = field(default_factory=list)


@dataclass
class AirflowDag:
    known: bool
    paused: bool | None = None
    expected_run: AirflowRun | None = None  # the run of the latest expected interval, if one exists
    latest_run: AirflowRun | None = None  # the run with the latest data interval
    runs: dict[str, AirflowRun] = field(default_factory=dict)  # the runs asked about, by run id


def airflow_dags(expected: dict[str, datetime], run_ids: dict[str, set[str]]) -> dict[str, AirflowDag]:
    """What Airflow's metadata says about each DAG: paused or not, the run of its expected interval (if
    any), its latest run, and the runs named in ``run_ids`` (the page runs inside the API server)."""
    from airflow.models import DagModel, DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def info(session, run: DagRun | None) -> AirflowRun | None:
        if run is None:
            return None
        failed = []
        if str(run.state) == "failed":
            failed = list(session.scalars(select(TaskInstance.task_id).where(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                TaskInstance.state.in_(["failed", "upstream_failed"])).order_by(TaskInstance.start_date)))
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return AirflowRun(run.run_id, str(run.state), getattr(run.triggered_by, "value", run.triggered_by),
                          getattr(run.run_type, "value", run.run_type), iso(run.data_interval_end),
                          iso(run.start_date), iso(run.end_date), failed)

    out = {}
    with create_session() as session:
        paused = dict(session.execute(select(DagModel.dag_id, DagModel.is_paused).where(
            DagModel.dag_id.in_(list(expected)))).all())
        for dag_id, end in expected.items():
            if dag_id not in paused:
                out[dag_id] = AirflowDag(known=False)
                continue
            runs = select(DagRun).where(DagRun.dag_id == dag_id)
            exp = session.scalars(runs.where(DagRun.data_interval_end == end)
                                  .order_by(DagRun.run_after.desc()).limit(1)).first()
            latest = session.scalars(runs.order_by(DagRun.data_interval_end.desc().nulls_last(),
                                                   DagRun.run_after.desc()).limit(1)).first()
            named = session.scalars(runs.where(DagRun.run_id.in_(sorted(run_ids.get(dag_id, ()))))).all()
            out[dag_id] = AirflowDag(True, bool(paused[dag_id]), info(session, exp), info(session, latest),
                                     {r.run_id: info(session, r) for r in named})
    return out


# ---- where a dataset stands ---------------------------------------------------------------------------------


def attempt_outcome(attempt: dict[str, Any], next_scored_at: datetime | None = None) -> str:
    """blocked (a check failed), published (the run's publish came after this attempt and before the next),
    or not_published."""
    if attempt["checks_failed"]:
        return "blocked"
    published = attempt.get("published_at")
    if published and published >= attempt["scored_at"] and (next_scored_at is None or published < next_scored_at):
        return "published"
    return "not_published"


def _with_outcomes(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each attempt with its ``outcome`` (:func:`attempt_outcome`), judged against the run's next attempt."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        by_run.setdefault(a["dag_run_id"], []).append(a)
    for run in by_run.values():
        run.sort(key=lambda a: a["attempt"])
        for a, nxt in zip(run, run[1:] + [None], strict=True):
            a["outcome"] = attempt_outcome(a, nxt["scored_at"] if nxt else None)
            a["latest_attempt"] = nxt is None
    return attempts


def classify(e: Entry, expected_end: datetime, latest: dict[str, Any] | None, last_good: dict[str, Any] | None,
             af: AirflowDag | None, blockers: list[str], now: datetime) -> tuple[str, str]:
    """The state of ``e``'s latest expected interval (one of :data:`STATES`) and why, in a sentence or two.

    ``latest`` is the latest scored run at its latest attempt (with ``outcome``), ``last_good`` the latest
    published run, ``af`` Airflow's view of the DAG, ``blockers`` the other outputs that failed in the same
    run (a derived product publishes all or none).
    """
    good = (f" {e.table} still holds the last good run's data: score {_score(last_good.get('score'))} for the "
            f"interval ending {when(last_good['interval_end'])}, published {when(last_good['published_at'])}."
            if last_good else f" Nothing of {e.name} has been published yet.")
    if latest and latest["interval_end"] >= expected_end:
        end, attempt = when(latest["interval_end"]), latest["attempt"]
        again = f" (attempt {attempt})" if attempt > 1 else ""
        if latest["outcome"] == "blocked":
            n = latest["checks_failed"]
            return "blocked", (f"The run for the interval ending {end}{again} failed {n} blocking "
                               f"check{'s' if n != 1 else ''}: {e.table} was not published." + good)
        if latest["outcome"] == "published":
            warned = latest["checks_warned"]
            text = (f"Published {when(latest['published_at'])}: {latest.get('rows_published') or 0:,} rows for the "
                    f"interval ending {end}{again}.")
            if warned:
                return "published_with_warnings", text + (
                    f" {warned} check{'s' if warned != 1 else ''} warned (recorded and published, not blocking).")
            return "published", text
        run = (af.runs.get(latest["dag_run_id"]) if af else None)
        if blockers:
            why = (f"{', '.join(blockers)} failed a blocking check in the same run, and {e.product} publishes "
                   f"all of its outputs or none.")
        elif run and run.state == "failed":
            why = f"the DAG run failed after the gate ({', '.join(run.failed_tasks) or 'see its tasks'})."
        elif run and run.state in ("running", "queued"):
            why = "the run is still going (the publish comes after the gate)."
        else:
            why = "no publish is logged for this run (meta.publish_log)."
        return "not_published", f"The run for the interval ending {end}{again} passed the gate but did not publish: " \
                                f"{why}" + good
    exp = when(expected_end)
    if af is not None and not af.known:
        return "nothing_ran", (f"Nothing ran for the interval ending {exp}: Airflow does not know {e.dag_id} "
                               f"(not parsed yet, or an import error: see Dags in the UI).")
    if af and af.expected_run:
        run = af.expected_run
        if run.state in ("running", "queued"):
            return "running", f"The run for the interval ending {exp} ({run.run_id}) is {run.state}."
        if run.state == "failed":
            tasks = ", ".join(run.failed_tasks) or "see its tasks"
            return "failed_before_gate", (f"The run for the interval ending {exp} ({run.run_id}) failed before "
                                          f"the quality gate recorded anything (failed: {tasks})." + good)
        return "nothing_ran", (f"The run for the interval ending {exp} ({run.run_id}) is {run.state} but recorded "
                               f"no quality result (did any task run?).")
    text = f"Nothing ran for the interval ending {exp}"
    if af and af.paused:
        text += f": {e.dag_id} is paused, so the scheduler starts no runs."
    elif af and now - expected_end < timedelta(minutes=15):
        return "nothing_ran", f"Due: the interval ending {exp} has just ended; the scheduler starts its run shortly."
    elif af:
        text += (f" although {e.dag_id} is active: is the scheduler running? (Catchup is off: a missed interval "
                 f"is not run by itself.)")
    else:
        text += "."
    prior = af.latest_run if af else None
    if prior:
        text += f" Its latest run ({prior.run_id}) covered the interval ending {when(prior.interval_end)}"
        if prior.triggered_by == "test":
            text += (f" and was started by dag.test(), not the scheduler: make demo runs each DAG once, for its "
                     f"latest interval before {when(_demo_instant())}")
        text += "."
    elif not latest:
        text += " It has never run."
    return "nothing_ran", text + " Unpause the DAG, or trigger or backfill the interval in Airflow."


def _demo_instant() -> datetime:
    return datetime.fromisoformat(settings.DEMO_DATE).replace(tzinfo=UTC) + timedelta(days=1)


def _score(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}"


@dataclass
class Status:
    name: str
    kind: str
    dag_id: str
    owner: str
    cadence: str
    schedule: str
    table: str
    expected_interval_end: str
    state: str  # one of STATES
    state_label: str
    explanation: str
    latest: dict[str, Any] | None  # the latest scored run, at its latest attempt
    last_good: dict[str, Any] | None  # the latest published run
    missing_latest_run: bool  # no score for the latest expected interval
    failing_checks: list[dict[str, Any]] = field(default_factory=list)
    quarantined_rows: int | None = None  # in the latest scored run's interval (datasets; None: no partition)
    run_url: str | None = None  # the latest run in the Airflow UI (relative to its base URL)
    page_url: str | None = None  # this dataset's page (relative to the app)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            v = v.isoformat()
        elif isinstance(v, Decimal):
            v = float(v)
        out[k] = v
    return out


ATTEMPT_COLUMNS = ["interval_start", "interval_end", "dag_run_id", "dag_id", "attempt", "try_number", "score",
                   "checks_passed", "checks_warned", "checks_failed", "checks_not_evaluated", "scored_at",
                   "published_at", "rows_published"]


def statuses(now: datetime | None = None, airflow=airflow_dags, entries: list[Entry] | None = None) -> list[Status]:
    """Every catalogue entry's state. ``airflow`` is :func:`airflow_dags` (a stand-in in unit tests)."""
    now = now or datetime.now(UTC)
    entries = entries if entries is not None else catalogue()
    latest, good, problems, blocked_runs = {}, {}, {}, {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if _has_history(conn):
            for row in conn.execute(_sql("latest_runs.sql")).fetchall():
                latest[row[0]] = dict(zip(ATTEMPT_COLUMNS, row[1:], strict=True))
            for ds, start, end, run, published, rows, score, attempt in conn.execute(_sql("last_good.sql")):
                good[ds] = {"interval_start": start, "interval_end": end, "dag_run_id": run, "published_at": published,
                            "rows_published": rows, "score": float(score) if score is not None else None,
                            "attempt": attempt}
            keys = [(ds, a["dag_run_id"], a["attempt"]) for ds, a in latest.items()]
            for ds, check, column, outcome, value, threshold, severity, unit, diag in conn.execute(
                    _sql("latest_problems.sql"), {"datasets": [k[0] for k in keys], "runs": [k[1] for k in keys],
                                                  "attempts": [k[2] for k in keys]}):
                problems.setdefault(ds, []).append(
                    {"check": check, "column": column, "outcome": outcome, "measured": value, "unit": unit,
                     "expected": threshold, "severity": severity, "diagnostics": diag or {}})
            runs = [a["dag_run_id"] for a in latest.values()]
            for run, dag_id, ds in conn.execute(_sql("run_blockers.sql"), {"runs": runs}):
                blocked_runs.setdefault((dag_id, run), []).append(ds)
            for a in latest.values():  # the run's publish against this attempt (no later attempt exists)
                a["outcome"] = attempt_outcome(a)
    expected = {e.name: expected_interval_end(e.schedule, now) for e in entries}
    dag_expected = {e.dag_id: expected[e.name] for e in entries}
    run_ids: dict[str, set[str]] = {}
    for e in entries:
        if e.name in latest:
            run_ids.setdefault(e.dag_id, set()).add(latest[e.name]["dag_run_id"])
    af = airflow(dag_expected, run_ids) if airflow else {}
    out = []
    for e in entries:
        lt, lg = latest.get(e.name), good.get(e.name)
        blockers = ([d for d in blocked_runs.get((lt["dag_id"], lt["dag_run_id"]), []) if d != e.name]
                    if lt and e.kind == "output" else [])
        state, why = classify(e, expected[e.name], lt, lg, af.get(e.dag_id), blockers, now)
        docs = contract_docs(e.contract_path)
        failing = [{**p, "thresholds": docs[p["check"]].thresholds if p["check"] in docs else None}
                   for p in problems.get(e.name, [])]
        out.append(Status(
            name=e.name, kind=e.kind, dag_id=e.dag_id, owner=e.owner, cadence=_cadence(e.schedule),
            schedule=e.schedule, table=e.table, expected_interval_end=expected[e.name].isoformat(), state=state,
            state_label=STATES[state], explanation=why, latest=_jsonable(lt) if lt else None,
            last_good=_jsonable(lg) if lg else None,
            missing_latest_run=lt is None or lt["interval_end"] < expected[e.name], failing_checks=failing,
            quarantined_rows=quarantined_rows(e.name, lt["interval_start"]) if lt and e.kind == "dataset" else None,
            run_url=airflow_run_route(lt["dag_id"] or e.dag_id, lt["dag_run_id"]) if lt else None,
            page_url=f"datasets/{quote(e.name, safe='')}"))
    return out


def _cadence(schedule: str) -> str:
    from c360.registry import cadence_label

    return cadence_label(schedule).replace("_", " ")


def airflow_run_route(dag_id: str, run_id: str, task_id: str | None = None, try_number: int | None = None) -> str:
    """A path in the Airflow UI (relative to its base URL): the DAG run, or one task's log of one try."""
    route = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        route += f"/tasks/{quote(task_id, safe='')}" + (f"?try_number={try_number}" if try_number else "")
    return route


@cache
def _contract_docs(path: str, mtime: float, readme_mtime: float) -> dict[str, Any]:
    from pathlib import Path

    from c360 import checkdocs

    meanings = checkdocs.readme_meanings(settings.PROJECT_DIR / "quality" / "README.md")
    return {c.name: c for c in checkdocs.contract_checks(Path(path), meanings)}


def contract_docs(contract_path: Path) -> dict[str, Any]:
    """The contract's checks by name (:class:`c360.checkdocs.ContractCheck`), re-read when a file changes."""
    readme = settings.PROJECT_DIR / "quality" / "README.md"
    return _contract_docs(str(contract_path), contract_path.stat().st_mtime, readme.stat().st_mtime)


# ---- history ------------------------------------------------------------------------------------------------


def attempts(name: str, since: datetime | None = None, limit: int = 2000, run_id: str | None = None
             ) -> list[dict[str, Any]]:
    """Every recorded attempt of ``name``'s runs (or of one run), newest first, each with its ``outcome``."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not _has_history(conn):
            return []
        rows = conn.execute(_sql("attempts.sql"), {
            "dataset": name, "limit": limit, "run_id": run_id,
            "since": since or datetime(1900, 1, 1, tzinfo=UTC)}).fetchall()
    out = [dict(zip(ATTEMPT_COLUMNS, r, strict=True)) for r in rows]
    for a in out:
        a["score"] = float(a["score"]) if a["score"] is not None else None
    return _with_outcomes(out)


def score_history(name: str, limit: int = 2000) -> list[dict[str, Any]]:
    """The score of every attempt, oldest first (JSON)."""
    return [_jsonable(a) for a in reversed(attempts(name, limit=limit))]


@dataclass
class Slot:
    """One interval of a trend: its runs' attempts (oldest first), or none (a gap: nothing was scored)."""

    end: datetime
    attempts: list[dict[str, Any]]
    expected: bool = True  # an interval the schedule has (a run of another interval is added as unexpected)
    skipped: int = 0  # a break: this many intervals without a run, drawn as one gap


def trend_slots(schedule: str, expected_end: datetime, history: list[dict[str, Any]], n: int,
                key: str = "interval_end") -> list[Slot]:
    """The last ``n`` intervals of ``schedule`` up to ``expected_end`` with their attempts; an interval without
    any is a gap. When the latest run is older than the window's last third, the window ends at the latest
    run instead and one break stands for the intervals missing since (so a paused DAG's history stays in
    view)."""
    ends = interval_ends(schedule, expected_end, n)
    by_end: dict[datetime, list[dict[str, Any]]] = {}
    for a in history:
        by_end.setdefault(a[key], []).append(a)
    skipped = 0
    if by_end:
        newest = max(by_end)
        if newest < ends[len(ends) * 2 // 3]:
            from croniter import croniter

            it, skipped = croniter(schedule, newest.astimezone(UTC).replace(tzinfo=None)), 0
            while it.get_next(datetime).replace(tzinfo=UTC) <= expected_end:
                skipped += 1
            ends = interval_ends(schedule, expected_end_for(schedule, newest), n - 1)
    slots = {end: Slot(end, []) for end in ends}
    for end, items in by_end.items():
        if end < ends[0]:
            continue
        slot = slots.setdefault(end, Slot(end, [], expected=False))
        slot.attempts = sorted(items, key=lambda a: (a["scored_at"], a.get("attempt", 0)))
    out = [slots[k] for k in sorted(slots)]
    if skipped:
        out.append(Slot(expected_end, [], skipped=skipped))
    return out


def expected_end_for(schedule: str, at: datetime) -> datetime:
    """The interval end of ``schedule`` at or before ``at``."""
    return expected_interval_end(schedule, at)


def check_history(name: str, check: str, limit: int = 500) -> list[dict[str, Any]]:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not _has_history(conn):
            return []
        rows = conn.execute(_sql("check_history.sql"), {"dataset": name, "check": check, "limit": limit}).fetchall()
    cols = ["interval_start", "interval_end", "dag_run_id", "dag_id", "attempt", "outcome", "measured_value",
            "threshold", "severity", "unit", "diagnostics", "checked_at", "published_at"]
    return [dict(zip(cols, r, strict=True)) for r in rows]


def run_checks(name: str, run_id: str) -> dict[int, list[dict[str, Any]]]:
    """The checks of every attempt of one run, by attempt (latest first)."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not _has_history(conn):
            return {}
        rows = conn.execute(_sql("run_checks.sql"), {"dataset": name, "run_id": run_id}).fetchall()
    out: dict[int, list[dict[str, Any]]] = {}
    cols = ["attempt", "check_name", "column_name", "outcome", "measured_value", "threshold", "severity",
            "diagnostics", "unit", "checked_at"]
    for r in rows:
        row = dict(zip(cols, r, strict=True))
        out.setdefault(row["attempt"], []).append(row)
    return out


# ---- the lake: quarantined rows -------------------------------------------------------------------------------


def _quarantine_files(dataset: str, start: datetime):
    """(filesystem, files) of a quarantine partition, or None when it does not exist."""
    from c360 import lake

    uri = lake.uri("quarantine", dataset, start)
    if lake.is_local(uri):  # no ObjectStoragePath: that would set the API server's umask (lake.owner_only)
        folder = lake.local_path(uri)
        if not folder.is_dir():
            return None
        return None, sorted(str(f) for f in folder.rglob("*.parquet"))
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    p = lake.path(uri)
    if not p.exists():
        return None
    return PyFileSystem(FSSpecHandler(p.fs)), sorted(str(f.path) for f in p.rglob("*.parquet"))


def quarantined_rows(dataset: str, start: datetime) -> int | None:
    """Rows quarantined in one interval's partition, from the Parquet footers (nothing else is read);
    None when the partition does not exist (the stage step did not run, or an output)."""
    import pyarrow.parquet as pq

    found = _quarantine_files(dataset, start)
    if found is None:
        return None
    fs, files = found
    return sum(pq.ParquetFile(f if fs is None else fs.open_input_file(f)).metadata.num_rows for f in files)


def quarantine_reasons(dataset: str, start: datetime) -> dict[str, int] | None:
    """Quarantined rows of one interval by reason (reads the reason column only)."""
    import pyarrow.parquet as pq

    found = _quarantine_files(dataset, start)
    if found is None:
        return None
    fs, files = found
    counts: dict[str, int] = {}
    for f in files:
        table = pq.read_table(f, columns=["_reject_reason"], filesystem=fs)
        for row in table.group_by("_reject_reason").aggregate([("_reject_reason", "count")]).to_pylist():
            counts[row["_reject_reason"]] = counts.get(row["_reject_reason"], 0) + row["_reject_reason_count"]
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def batch_table(e: Entry, dag_id: str, interval_start: datetime, interval_end: datetime) -> str | None:
    """The run's batch table if it is still in ``staging`` (kept after a blocked gate for inspection)."""
    from c360 import products, warehouse
    from c360.registry import load_registry

    registry = load_registry()
    if e.kind == "dataset":
        name = warehouse.batch_name(dag_id, interval_start)
    else:
        name = products.batch_table(registry.derived[e.product], e.name, interval_end)
    return name if warehouse.table_exists(name) else None


def failing_rows(diagnostics: dict[str, Any] | None) -> str | None:
    """What Soda counted as failing rows, in words: ``25 of 1,000 rows (missing_count)``."""
    if not diagnostics:
        return None
    for key in ("failed_rows_count", "missing_count", "invalid_count", "duplicate_count"):
        if isinstance(diagnostics.get(key), int | float):
            tested = diagnostics.get("check_rows_tested") or diagnostics.get("dataset_rows_tested")
            n = int(diagnostics[key])
            return f"{n:,} of {int(tested):,} rows ({key})" if tested else f"{n:,} rows ({key})"
    return None


def dump(value: Any) -> Any:
    """JSON for the API: dataclasses and datetimes included."""
    return json.loads(json.dumps(value, default=lambda v: asdict(v) if hasattr(v, "__dataclass_fields__")
                                 else v.isoformat() if isinstance(v, datetime) else str(v)))


# ---- pages --------------------------------------------------------------------------------------------------

OVERVIEW_SLOTS, DATASET_SLOTS = 24, 60
RANK = {"blocked": 0, "failed_before_gate": 1, "not_published": 2, "nothing_ran": 3, "running": 4,
        "published_with_warnings": 5, "published": 6}
# a check's outcome drawn like an attempt's: failed red, warned amber, passed blue
CHECK_MARKS = {"failed": "blocked", "warned": "not_published", "passed": "published"}


def entry_named(name: str) -> Entry | None:
    return next((e for e in catalogue() if e.name == name), None)
