"""Benchmark: one day of the Customer 360 Spark job, incremental against a full rebuild and against DuckDB.

    python bench/customer360.py                        # 1M customers, 20M orders over 400 days (the default)
    python bench/customer360.py --customers 100000 --orders-per-day 5000
    python bench/customer360.py --steps duckdb_t1      # the DuckDB reference again, against the last full_t1

The generator's sources (``c360.generator``, the same as ``make bench``/``make demo``) are written as the
DAG's ``export_inputs`` writes its snapshots (Parquet with the registry's Arrow schema; cached in
``.state/bench/``). The day before the last generated one is the previous as-of (T0); the last day (T1)
brings that day's orders with their lines and payments, plus a thousand older orders cancelled and a
thousand refunds. On one just-started local Spark Connect server (as the DAGs use it):

1. full rebuild as of T0, leaving the state (``--state-out``): what the first run or a backfill costs;
2. incremental as of T1 from that state and the day's change sets;
3. full rebuild as of T1 (the same-run reference the incremental run must equal).

Then, once the Spark server has stopped:

4. ``duckdb_t1``: DuckDB computing the same four outputs from the same T1 files (``bench/duck_c360.py``, the
   job's definitions in SQL), in a child process on every core (memory limit 12 GB, spilling under the
   bench folder): its wall time (the child's, start to exit) and peak RSS (its VmHWM).

The outputs of 2 and 3 are compared (RFM, segments, profiles: every row; enriched orders: the replaced
orders' rows), and those of 4 with 3's (all four outputs, every row and column, the profile JSON as text:
``duck_c360.compare``); then wall times and peak RSS per step are printed (the Spark steps: the server's
VmHWM, reset between steps) with full_t1 / duckdb_t1. Web analytics is read as an absent optional input
(empty) in all four. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "include" / "spark"), str(ROOT / "bench")]
BENCH_DIR = ROOT / ".state" / "bench"
CHANGED = 1_000  # older orders cancelled, and refunds, on the incremental day


def make_inputs(folder: Path, customers: int, orders_per_day: int, days: int) -> tuple:
    """Snapshots as of T0 and T1 and the change sets between them (cached in ``folder``); returns (T0, T1)."""
    import customer360_job as job
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from c360 import generator
    from c360.registry import arrow_schema, load_registry

    registry = load_registry()
    scale = generator.Scale(customers=customers, days=days, orders_per_day=orders_per_day, sessions_per_hour=1,
                            ga_days=1)
    t1 = scale.end_ts
    t0 = t1 - timedelta(days=1)
    marker = folder / "done.json"
    if marker.exists():
        return t0, t1
    shutil.rmtree(folder, ignore_errors=True)
    data = generator.generate(scale)
    tables = {n: data.tables[n].select(arrow_schema(registry[n].columns).names).cast(arrow_schema(registry[n].columns))
              for n in ("customer", "product", "brand", "orders", "order_line_item", "transactions")}
    orders = tables["orders"]
    today = pc.greater_equal(orders["order_date"], pa.scalar(t0, pa.timestamp("us")))
    new_ids = pc.filter(orders["order_id"], today)

    def of_new(table: pa.Table) -> pa.Array:
        return pc.is_in(table["order_id"], value_set=new_ids)

    before = {n: tables[n] for n in ("customer", "product", "brand")}
    before["orders"] = orders.filter(pc.invert(today))
    for n in ("order_line_item", "transactions"):
        before[n] = tables[n].filter(pc.invert(of_new(tables[n])))
    rng = np.random.default_rng(3)
    old = before["orders"]
    picked = rng.choice(old.num_rows, CHANGED, replace=False)
    cancelled = old.take(pa.array(picked))
    cancelled = cancelled.set_column(cancelled.schema.get_field_index("order_status"), "order_status",
                                     pa.array(["cancelled"] * CHANGED))
    refunded = old.take(pa.array(rng.choice(old.num_rows, CHANGED, replace=False)))
    refunds = pa.table({
        "transaction_id": pa.array([f"R{i:08d}" for i in range(CHANGED)]),
        "order_id": refunded["order_id"],
        "amount": pc.negate(refunded["total_amount"]),
        "payment_method": refunded["payment_method"],
        "transaction_ts": pa.array([t0] * CHANGED, pa.timestamp("us")),
        "processed_ts": pa.array([t0] * CHANGED, pa.timestamp("us")),
        "updated_at": pa.array([t0] * CHANGED, pa.timestamp("us")),
    }).cast(tables["transactions"].schema)
    changes = {
        "orders": pa.concat_tables([orders.filter(today), cancelled]),
        "order_line_item": tables["order_line_item"].filter(of_new(tables["order_line_item"])),
        "transactions": pa.concat_tables([tables["transactions"].filter(of_new(tables["transactions"])), refunds]),
    }
    after = dict(tables)
    after["orders"] = pa.concat_tables([old.filter(pc.invert(pc.is_in(old["order_id"], value_set=cancelled["order_id"]))),
                                        cancelled, orders.filter(today)])
    after["transactions"] = pa.concat_tables([tables["transactions"], refunds])

    def write(sub: str, name: str, table: pa.Table) -> None:
        (folder / sub / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / sub / name / "part-00000.parquet", row_group_size=1_000_000)

    web = arrow_schema(registry["web_analytics"].columns).empty_table()
    for sub, snap in (("t0", before), ("t1", after)):
        for name, table in snap.items():
            write(sub, name, table)
        write(sub, "web_analytics", web)
    for name, table in changes.items():
        write("changes", name, table.append_column(job.DELETED, pa.array([False] * table.num_rows)))
    (folder / "visitor_map").mkdir()
    (folder / "visitor_map" / "map.csv").write_bytes(data.visitor_map)
    marker.write_text(json.dumps({"orders_t0": before["orders"].num_rows, "changed_orders": changes["orders"].num_rows}))
    return t0, t1


def inputs(folder: Path, snapshot: str, changes: bool = False) -> dict[str, str]:
    import customer360_job as job

    uris = {n: str(folder / snapshot / n) for n in ("customer", "product", "brand", "orders", "order_line_item",
                                                     "transactions", "web_analytics")}
    if changes:
        uris.update({n: str(folder / "changes" / n) for n in job.MIRRORS})
    uris["visitor_map"] = str(folder / "visitor_map")
    return uris


def run_duckdb(folder: Path, as_of, spec: dict, work: Path) -> dict:
    """The DuckDB reference on the T1 inputs in a child process (``bench/duck_c360.py``) into
    ``work/duckdb_t1``, and its outputs against the Spark job's full rebuild (``work/full_t1``)."""
    import duck_c360

    out, tmp = work / "duckdb_t1", work / "duckdb_tmp"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "bench" / "duck_c360.py"), "--inputs", json.dumps(inputs(folder, "t1")),
           "--as-of", as_of.isoformat(), "--spec", base64.b64encode(json.dumps(spec).encode()).decode(),
           "--out", str(out), "--threads", str(os.cpu_count()), "--memory-limit", "12GB", "--temp-dir", str(tmp)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"bench/customer360.py: the DuckDB reference failed:\n{proc.stderr[-3000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    print("duckdb_t1", round(seconds, 1), "s", {n: child[n] for n in duck_c360.OUTPUTS}, flush=True)
    if not (work / "full_t1").exists():
        raise SystemExit(f"bench/customer360.py: no full_t1 outputs in {work} to compare the DuckDB reference with")
    differ = duck_c360.compare(work / "full_t1", out, temp_dir=tmp, samples=3)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"duckdb_t1_s": round(seconds, 1), "duckdb_t1_peak_mb": child["peak_mb"],
            "duckdb_t1_counts": {n: child[n] for n in duck_c360.OUTPUTS},
            "duckdb_t1_identity_iterations": child["identity_iterations"], "duckdb_t1_step_s": child["step_s"],
            "rows_differing_duckdb_vs_full_t1": differ}


def _reset_hwm(pid: int | None) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except (OSError, TypeError):
        pass


STEPS = ("full_t0", "incremental_t1", "full_t1", "duckdb_t1")


def main(argv: list[str] | None = None) -> int:
    import customer360_job as job
    from stage import _free_port, _vm_hwm_mb

    import jobkit
    from c360 import spark_runner
    from c360.segments import load_segments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders-per-day", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--steps", default=",".join(STEPS),
                        help="run only these steps (a later step reuses what an earlier run of the bench left)")
    args = parser.parse_args(argv)
    wanted = args.steps.split(",")
    if unknown := [w for w in wanted if w not in STEPS]:
        parser.error(f"unknown steps {unknown}: choose from {','.join(STEPS)}")
    folder = BENCH_DIR / f"c360_{args.customers}_{args.orders_per_day}_{args.days}"
    t = time.perf_counter()
    t0, t1 = make_inputs(folder, args.customers, args.orders_per_day, args.days)
    print(f"inputs ready in {time.perf_counter() - t:.1f} s: {json.loads((folder / 'done.json').read_text())}")
    spec = load_segments().spec()
    work = folder / "runs"
    if wanted[:1] == ["full_t0"]:
        shutil.rmtree(work, ignore_errors=True)
    figures: dict = {"cores": os.cpu_count()}
    differ = None
    steps = [
        ("full_t0", dict(inputs=inputs(folder, "t0"), as_of=t0, out=str(work / "full_t0"),
                         state_out=str(work / "state_t0"))),
        ("incremental_t1", dict(inputs=inputs(folder, "t1", changes=True), as_of=t1, out=str(work / "inc_t1"),
                                state_in=str(work / "state_t0"), state_out=str(work / "state_t1"))),
        ("full_t1", dict(inputs=inputs(folder, "t1"), as_of=t1, out=str(work / "full_t1"))),
    ]
    if spark_steps := [step for step in steps if step[0] in wanted]:
        port = _free_port()
        t = time.perf_counter()
        spark_runner.ensure_local_server(port)
        figures["connect_server_startup_s"] = round(time.perf_counter() - t, 1)
        pid = spark_runner._recorded_pid()
        try:
            for name, kw in spark_steps:
                _reset_hwm(pid)
                t = time.perf_counter()
                spark = jobkit.session(f"bench-c360-{name}", f"sc://127.0.0.1:{port}")
                counts = job.run(spark, spec=spec, **kw)
                spark.stop()
                figures[f"{name}_s"] = round(time.perf_counter() - t, 1)
                figures[f"{name}_peak_mb"] = _vm_hwm_mb(pid)
                figures[f"{name}_counts"] = counts
                print(name, figures[f"{name}_s"], "s", counts, flush=True)
            if "full_t1" in wanted:
                spark = jobkit.session("bench-c360-compare", f"sc://127.0.0.1:{port}")
                differ = {}
                for name in ("rfm", "segment_membership", "customer_profile"):
                    a, b = (spark.read.parquet(str(work / run / name)) for run in ("inc_t1", "full_t1"))
                    differ[name] = a.exceptAll(b).count() + b.exceptAll(a).count()
                replaced = spark.read.parquet(str(work / "inc_t1" / "orders_enriched_replaced"))
                full = spark.read.parquet(str(work / "full_t1" / "orders_enriched")).join(replaced, "order_id",
                                                                                          "left_semi")
                delta = spark.read.parquet(str(work / "inc_t1" / "orders_enriched"))
                differ["orders_enriched (replaced orders)"] = full.exceptAll(delta).count() + delta.exceptAll(
                    full).count()
                spark.stop()
                figures["rows_differing"] = differ
        finally:
            spark_runner.stop_local_server()
    if "duckdb_t1" in wanted:  # on a machine the Spark server has left
        figures.update(run_duckdb(folder, t1, spec, work))
    if "full_t1_s" in figures and "incremental_t1_s" in figures:
        figures["speedup_vs_full_t1"] = round(figures["full_t1_s"] / figures["incremental_t1_s"], 1)
    if "full_t1_s" in figures and "duckdb_t1_s" in figures:
        figures["full_t1_vs_duckdb_t1"] = round(figures["full_t1_s"] / figures["duckdb_t1_s"], 2)
    print(json.dumps(figures, default=str))
    labels = {"full_t0": "full rebuild (T0, leaving state)", "incremental_t1": "incremental day",
              "full_t1": "full rebuild (T1)", "duckdb_t1": "DuckDB reference (T1)"}
    parts = [f"{labels[n]} {figures[f'{n}_s']} s (peak {figures[f'{n}_peak_mb']} MB)" for n in STEPS
             if f"{n}_s" in figures]
    if "speedup_vs_full_t1" in figures:
        parts.append(f"incremental {figures['speedup_vs_full_t1']}x | rows differing: {differ}")
    if "duckdb_t1_s" in figures:
        ratio = figures.get("full_t1_vs_duckdb_t1")
        parts.append((f"full_t1 / duckdb_t1 {ratio}x | " if ratio else "")
                     + f"rows differing DuckDB vs full_t1: {figures['rows_differing_duckdb_vs_full_t1']}")
    print(f"customer_360 job, {args.customers:,} customers, {args.orders_per_day:,} orders/day over {args.days} days, "
          f"{figures['cores']} cores: " + " | ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
