"""The project's commands (called by the Makefile): setup, demo, up, down, psql, env.

    python -m c360.cli demo     # generate sources, run every DAG for the demo interval, print a summary
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from c360 import procs, settings

log = logging.getLogger("c360")

API_HOST = "127.0.0.1"


def setup() -> Path:
    """Start the embedded PostgreSQL (unless connections point elsewhere), create databases, migrate Airflow."""
    from c360 import pg

    settings.state_dir().mkdir(parents=True, exist_ok=True)
    socket_dir = pg.start_embedded()
    pg.ensure_databases(socket_dir)
    env = settings.apply_runtime_env(socket_dir)
    settings.airflow_home().mkdir(parents=True, exist_ok=True)
    settings.lineage_file().parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_bin("airflow"), "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        from c360 import governance, warehouse

        warehouse.bootstrap(conn)
        governance.apply(conn)  # roles, masking views, row security (README "Governance")
    return socket_dir


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def demo_logical_date() -> datetime:
    """Runs triggered at the end of the demo day: each DAG gets its latest complete interval before it."""
    return datetime.fromisoformat(settings.DEMO_DATE).replace(tzinfo=UTC) + timedelta(days=1)


def run_dags(logical_date: datetime, dag_ids: list[str] | None = None) -> dict[str, str]:
    """Run each DAG once with dag.test() for the interval before ``logical_date``. Returns dag_id → state."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.DAGS_DIR))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    if not bag.dags:
        raise RuntimeError(f"no DAGs found in {settings.DAGS_DIR}")
    states = {}
    from c360.registry import load_registry

    derived = {d.dag_id for d in load_registry().derived.values()}
    for dag_id in sorted(bag.dags, key=lambda i: (i in derived, i)):  # derived products after their inputs
        if dag_ids and dag_id not in dag_ids:
            continue
        failed = [d for d, s in states.items() if s != "success"]
        if dag_id in derived and failed:
            # its wait_for_inputs sensor would wait hours for inputs that failed
            states[dag_id] = "skipped"
            print(f"  {dag_id:<40} skipped: input DAGs did not succeed ({', '.join(failed)})", flush=True)
            continue
        started = time.monotonic()
        dr = test_run(bag.dags[dag_id], logical_date)
        states[dag_id] = str(dr.state)
        if not executed_any_task(dr):
            # Airflow reports success for a run that created no task (e.g. an interval before start_date)
            states[dag_id] = "no task ran"
        print(f"  {dag_id:<40} {states[dag_id]}  ({time.monotonic() - started:.0f} s)", flush=True)
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
    from c360 import pg
    from c360.registry import load_registry

    lines = ["", "Published tables (PostgreSQL warehouse, schema c360):"]
    from psycopg import sql

    from c360.warehouse import ident

    registry = load_registry()
    tables = [ds.output.table for ds in registry.active()]
    tables += [o.table for d in registry.derived.values() for o in d.outputs]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for table in tables:
            exists = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]
            if not exists:
                lines.append(f"  {table:<34} not published")
                continue
            n = conn.execute(sql.SQL("select count(*) from {}").format(ident(table))).fetchone()[0]
            lines.append(f"  {table:<34} {n:>10,} rows")
        if conn.execute("select to_regclass('c360.lens_segment_customers') is not null").fetchone()[0]:
            lines += ["", "Seed 002 sample lens query (customers in California per segment):"]
            for total, segment in conn.execute(
                    "select total_customers, segment_name from c360.lens_segment_customers "
                    "where state = 'California' order by total_customers desc").fetchall():
                lines.append(f"  {total:>8,}  {segment}")
        lines += ["", "Quality scores (latest run per dataset; 100 * passed / evaluated checks):"]
        rows = conn.execute(
            "select distinct on (dataset) dataset, score, checks_passed, checks_warned, checks_failed, "
            "interval_start from quality.dataset_scores order by dataset, scored_at desc"
        ).fetchall()
        for dataset, score, passed, warned, failed, start in rows:
            lines.append(f"  {dataset:<20} {score!s:>6}  passed {passed}, warned {warned}, failed {failed}"
                         f"  (interval from {start:%Y-%m-%d %H:%M})")
    lineage = settings.lineage_file()
    events = sum(1 for _ in lineage.open()) if lineage.exists() else 0
    lines += [
        "",
        f"Lineage: {events} OpenLineage events in {lineage}",
        "",
        "Next:",
        "  make psql SQL='select * from quality.check_results order by checked_at desc limit 20'",
        f"  lake (raw, stage, quarantine): {settings.lake_uri()}",
        "  make up   # the Airflow UI on http://127.0.0.1:8080",
    ]
    return "\n".join(lines)


def reset_warehouse() -> None:
    """The demo starts from an empty warehouse (published tables, staging, quality results, logs)."""
    from c360 import pg

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for schema in ("c360", "staging", "quality", "meta"):
            conn.execute(f"drop schema if exists {schema} cascade")


def demo_scale(args: argparse.Namespace):
    """The generator scale of ``demo`` (``build_parser().parse_args(["demo"])``: what ``make demo`` runs)."""
    from c360 import generator

    return generator.Scale(customers=args.customers, days=args.days, orders_per_day=args.orders_per_day,
                           sessions_per_hour=args.sessions_per_hour)


def cmd_demo(args: argparse.Namespace) -> int:
    from c360 import generator

    t0 = time.monotonic()
    print("Starting PostgreSQL and preparing Airflow's metadata DB ...", flush=True)
    setup()
    scale = demo_scale(args)
    print(f"Generating source systems: {scale}", flush=True)
    data = generator.generate(scale)
    reset_warehouse()
    settings.lineage_file().unlink(missing_ok=True)  # the summary counts this demo's lineage events
    counts = generator.load_sources(data)
    files = generator.write_landing(data)
    print(f"  source rows: {counts}; GA export files: {files}; injected defects: {data.defects}", flush=True)
    when = demo_logical_date()
    print(f"Running every DAG for the interval before {when:%Y-%m-%d %H:%M} UTC ...", flush=True)
    states = run_dags(when)
    print(summary())
    from c360 import governance

    print("\n" + governance.show_customer())
    print(f"\nDemo finished in {time.monotonic() - t0:.0f} s.")
    failed = {d: s for d, s in states.items() if s != "success"}
    if failed:
        print(f"DAG runs that did not succeed: {failed}", file=sys.stderr)
        return 1
    return 0


# ---- make up / down ---------------------------------------------------------------------------------------

SERVICES = {
    "api-server": ["api-server", "--host", API_HOST, "--port", "{port}"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def pid_dir() -> Path:
    return settings.state_dir() / "pids"


def start_services(port: int) -> str:
    """Start the Airflow services on 127.0.0.1 (PIDs in .state/pids); return the API URL once it answers."""
    setup()
    url = f"http://{API_HOST}:{port}"
    env = {**os.environ, "AIRFLOW__API__BASE_URL": url, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin"}
    pid_dir().mkdir(parents=True, exist_ok=True)
    logs = settings.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name, argv in SERVICES.items():
        pid_file = pid_dir() / f"{name}.pid"
        if pid_file.exists() and procs.alive(int(pid_file.read_text())):
            print(f"{name} already running (pid {pid_file.read_text()})")
            continue
        cmd = [_bin("airflow"), *[a.format(port=port) for a in argv]]
        with (logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        pid_file.write_text(str(proc.pid))
        print(f"started {name} (pid {proc.pid}), log {logs / f'{name}.log'}")
    if not _wait_http(f"{url}/api/v2/monitor/health", 120):
        raise RuntimeError(f"api-server did not answer on {url} within 120 s; see {logs}/api-server.log")
    return url


def admin_password() -> str | None:
    pw_file = settings.airflow_home() / "simple_auth_manager_passwords.json.generated"
    return json.loads(pw_file.read_text()).get("admin") if pw_file.exists() else None


def cmd_up(args: argparse.Namespace) -> int:
    try:
        url = start_services(args.port)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"\nAirflow is up: {url}\nLogin: admin / {admin_password() or '(see api-server log)'}\nStop with: make down")
    return 0


def _wait_http(url: str, seconds: float) -> bool:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def stop_services() -> list[str]:
    """Stop every service start_services started (each with the workers it spawned)."""
    stopped = []
    for pid_file in sorted(pid_dir().glob("*.pid")) if pid_dir().exists() else []:
        pid = int(pid_file.read_text())
        if procs.stop_group(pid, grace_s=15):
            stopped.append(f"{pid_file.stem} (pid {pid})")
        pid_file.unlink()
    return stopped


def cmd_down(args: argparse.Namespace) -> int:
    from c360 import pg

    for name in stop_services():
        print(f"stopped {name}")
    if pg.stop_embedded():
        print("stopped the embedded PostgreSQL")
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    from c360 import pg

    setup_env_only()
    p = pg.conn_params(settings.WAREHOUSE_CONN_ID)
    if args.role:  # make psql ROLE=c360_consumer: as that role's login (c360.governance)
        from c360 import governance

        p = {**p, **governance.login(args.role)}
    argv = [str(pg.psql_binary()), "-h", p.get("host", "localhost"), "-p", str(p.get("port", 5432)),
            "-U", p.get("user", "postgres"), "-d", p["dbname"]]
    if args.sql:
        argv += ["-v", "ON_ERROR_STOP=1", "-c", args.sql]
    env = {**os.environ, **({"PGPASSWORD": p["password"]} if p.get("password") else {})}
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def setup_env_only() -> None:
    """The environment and the databases, without Airflow's migration (for psql and env)."""
    from c360 import pg

    settings.state_dir().mkdir(parents=True, exist_ok=True)
    socket_dir = pg.start_embedded()
    pg.ensure_databases(socket_dir)
    settings.apply_runtime_env(socket_dir)


def cmd_env(args: argparse.Namespace) -> int:
    from shlex import quote

    setup_env_only()
    for k, v in settings.runtime_env().items():
        print(f"export {k}={quote(v)}")
    return 0


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


def cmd_quarantine(args: argparse.Namespace) -> int:
    setup_env_only()
    print(quarantine_report(args.dataset, args.interval))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m c360.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate the sources and run every DAG for the demo interval")
    demo.add_argument("--customers", type=int, default=int(os.environ.get("C360_DEMO_CUSTOMERS", 20_000)))
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--orders-per-day", type=int, default=2_000)
    demo.add_argument("--sessions-per-hour", type=int, default=200)
    demo.set_defaults(func=cmd_demo)
    up = sub.add_parser("up", help="start Airflow on 127.0.0.1")
    up.add_argument("--port", type=int, default=int(os.environ.get("C360_API_PORT", 8080)))
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what up and demo started").set_defaults(func=cmd_down)
    psql = sub.add_parser("psql", help="psql on the warehouse")
    psql.add_argument("--sql", default=os.environ.get("SQL") or None)
    psql.add_argument("--role", default=os.environ.get("ROLE") or None, help="a role of the registry's governance")
    psql.set_defaults(func=cmd_psql)
    quarantine = sub.add_parser("quarantine", help="quarantined rows of a dataset, by reason")
    quarantine.add_argument("--dataset", required=True)
    quarantine.add_argument("--interval", help="partition key, e.g. 2026-11-20T1245: list its rows")
    quarantine.set_defaults(func=cmd_quarantine)
    sub.add_parser("env", help="print the environment as export lines").set_defaults(func=cmd_env)
    sub.add_parser("setup", help="start PostgreSQL, create databases, migrate Airflow").set_defaults(
        func=lambda a: (setup(), 0)[1])
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
