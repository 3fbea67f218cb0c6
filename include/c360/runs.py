"""Running the DAGs in this process with ``dag.test()`` (the demo, the tests, the benchmarks) and what the demo
reports afterwards: the published tables, the quality scores, a dataset's quarantined rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from c360 import settings


def demo_logical_date() -> datetime:
    """Runs triggered at the end of the demo day: each DAG gets its latest complete interval before it."""
    return datetime.fromisoformat(settings.DEMO_DATE).replace(tzinfo=UTC) + timedelta(days=1)


def reset_warehouse() -> None:
    """The demo starts from an empty warehouse (published tables, staging, quality results, logs)."""
    from c360 import pg

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for schema in ("c360", "staging", "quality", "meta"):
            conn.execute(f"drop schema if exists {schema} cascade")


def run_dags(logical_date: datetime, dag_ids: list[str] | None = None) -> dict[str, str]:
    """Run each DAG once with dag.test() for the interval before ``logical_date``, each a
    :func:`c360.progress.step` (one line per DAG; a failed run shows its failed task's last log lines inside
    ``progress.logged``). Returns dag_id → state."""
    from airflow.dag_processing.dagbag import DagBag

    from c360 import progress
    from c360.registry import load_registry

    with progress.step("parse the DAGs") as parsed:
        bag = DagBag(dag_folder=str(settings.DAGS_DIR))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        if not bag.dags:
            raise RuntimeError(f"no DAGs found in {settings.DAGS_DIR}")
        parsed.done(f"{len(bag.dags)} DAGs, each runs its latest interval before {logical_date:%Y-%m-%d %H:%M} UTC")
    states: dict[str, str] = {}
    derived = {d.dag_id for d in load_registry().derived.values()}
    for dag_id in sorted(bag.dags, key=lambda i: (i in derived, i)):  # derived products after their inputs
        if dag_ids and dag_id not in dag_ids:
            continue
        failed = [d for d, s in states.items() if s != "success"]
        with progress.step(dag_id) as step:
            if dag_id in derived and failed:
                # its wait_for_inputs sensor would wait hours for inputs that failed
                states[dag_id] = "skipped"
                step.fail(f"skipped: input DAGs did not succeed ({', '.join(failed)})")
                continue
            dr = test_run(bag.dags[dag_id], logical_date)
            states[dag_id] = str(dr.state)
            if not executed_any_task(dr):
                # Airflow reports success for a run that created no task (e.g. an interval before start_date)
                states[dag_id] = "no task ran"
            if states[dag_id] == "success":
                step.done("success")
            else:
                bad = [ti.task_id for ti in dr.get_task_instances() if ti.state == "failed"]
                step.fail(f"{states[dag_id]}" + (f": {', '.join(bad)} failed" if bad else ""),
                          task=bad[0] if bad else None)
    return states


def test_run(dag, logical_date: datetime, **kwargs):
    """``dag.test()`` for ``logical_date``, with the run's start date set to when it started.

    Airflow's ``dag.test()`` creates its run with ``start_date`` = the logical date, so a run of a past interval
    (the demo's, two days back) shows a duration of days in the UI, which flattens every duration chart. The
    run's start becomes its first task's start (or the time ``dag.test()`` was called when no task ran).
    """
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    called = datetime.now(UTC)
    dr = dag.test(logical_date=logical_date, **kwargs)
    starts = [ti.start_date for ti in dr.get_task_instances() if ti.start_date is not None]
    start = min(starts, default=called)
    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.id == dr.id).values(start_date=start))
    dr.start_date = start
    return dr


def executed_any_task(dr) -> bool:
    """Whether a finished DAG run executed at least one task (a run with none "succeeds" in Airflow)."""
    return any(ti.start_date is not None for ti in dr.get_task_instances())


def summary() -> str:
    """What the demo published: each table's rows and its latest quality score, the seed's sample lens query,
    the lineage events, where to look next (the ports are the ones ``make up`` uses)."""
    from psycopg import sql

    from c360 import pg
    from c360.registry import load_registry
    from c360.warehouse import ident

    registry = load_registry()
    tables = [(ds.name, ds.output.table) for ds in registry.active()]
    tables += [(o.name, o.table) for d in registry.derived.values() for o in d.outputs]
    lines = ["", f"{'published table (PostgreSQL, schema c360)':<44} {'rows':>9}   quality score (checks passed/warned/failed)"]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        scores = {row[0]: row[1:] for row in conn.execute(
            "select distinct on (dataset) dataset, score, checks_passed, checks_warned, checks_failed "
            "from quality.dataset_scores order by dataset, scored_at desc").fetchall()}
        for name, table in tables:
            score = scores.get(name)
            quality = f"{score[0]!s:>6}  {score[1]}/{score[2]}/{score[3]}" if score else "     —  not scored"
            if not conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]:
                lines.append(f"  {table:<42} {'not published':>9}   {quality}")
                continue
            n = conn.execute(sql.SQL("select count(*) from {}").format(ident(table))).fetchone()[0]
            lines.append(f"  {table:<42} {n:>9,}   {quality}")
        if conn.execute("select to_regclass('c360.lens_segment_customers') is not null").fetchone()[0]:
            rows = conn.execute("select total_customers, segment_name from c360.lens_segment_customers "
                                "where state = 'California' order by total_customers desc").fetchall()
            lines += ["", "Seed 002 sample lens query, customers in California per segment:"]
            lines += _wrap([f"{segment} {total:,}" for total, segment in rows], "  ", " · ", 110)
    lineage = settings.lineage_file()
    events = sum(1 for _ in lineage.open()) if lineage.exists() else 0
    port = os.environ.get("C360_API_PORT", "8080")
    lines += [
        "",
        f"Lineage: {events} OpenLineage events in {lineage}; lake: {settings.lake_uri()}",
        f"Next: make up (the Airflow UI on http://127.0.0.1:{port}) · make psql SQL='select * from quality.check_results' "
        "· make quarantine DATASET=customer",
    ]
    return "\n".join(lines)


def _wrap(items: list[str], indent: str, sep: str, width: int) -> list[str]:
    lines, line = [], ""
    for item in items:
        if line and len(indent) + len(line) + len(sep) + len(item) > width:
            lines.append(indent + line)
            line = ""
        line = f"{line}{sep}{item}" if line else item
    return [*lines, indent + line] if line else lines


def quarantine_report(dataset: str, interval: str | None = None, limit: int = 50) -> str:
    """Quarantined rows of a dataset: counts by reason per interval, or the rows of one interval."""
    import pyarrow.dataset as pads
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from c360 import lake
    from c360.registry import load_registry

    load_registry()[dataset]  # a clear error for an unknown dataset
    root = lake.path(lake.uri("quarantine", dataset))
    parts = sorted(p for p in root.iterdir() if p.name.startswith("interval=")) if root.exists() else []
    if interval:
        parts = [p for p in parts if p.name == f"interval={interval}"]
        if not parts:
            return f"no quarantine partition interval={interval} under {root}"
    fs = PyFileSystem(FSSpecHandler(root.fs))
    lines = []
    for part in parts:
        table = pads.dataset(part.path, filesystem=fs, format="parquet").to_table()
        if not table.num_rows:
            continue
        if interval:
            for row in table.slice(0, limit).to_pylist():
                reason = row.pop("_reject_reason")
                lines.append(f"{reason}\n    {row}")
            if table.num_rows > limit:
                lines.append(f"... {table.num_rows - limit} more")
        else:
            counts = table.group_by("_reject_reason").aggregate([("_reject_reason", "count")]).to_pylist()
            for c in sorted(counts, key=lambda c: -c["_reject_reason_count"]):
                lines.append(f"{part.name}  {c['_reject_reason_count']:>7}  {c['_reject_reason'][:110]}")
    return "\n".join(lines) or f"nothing quarantined for {dataset} under {root}"
