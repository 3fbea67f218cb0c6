"""Benchmark: one day of the Customer 360 Spark job, incremental against a full rebuild, at the default scale.

    python bench/customer360.py                        # 1M customers, 20M orders over 400 days (the default)
    python bench/customer360.py --customers 100000 --orders-per-day 5000

The generator's sources (``c360.generator``, the same as ``make bench``/``make demo``) are written as the
DAG's ``export_inputs`` writes its snapshots (Parquet with the registry's Arrow schema; cached in
``.state/bench/``). The day before the last generated one is the previous as-of (T0); the last day (T1)
brings that day's orders with their lines and payments, plus a thousand older orders cancelled and a
thousand refunds. On one just-started local Spark Connect server (as the DAGs use it):

1. full rebuild as of T0, leaving the state (``--state-out``): what the first run or a backfill costs;
2. incremental as of T1 from that state and the day's change sets;
3. full rebuild as of T1 (the same-run reference the incremental run must equal).

The outputs of 2 and 3 are compared (RFM, segments, profiles: every row; enriched orders: the replaced
orders' rows), then wall times and the server's peak RSS per step are printed (VmHWM, reset between steps).
Web analytics is read as an absent optional input (empty) in all three. Prints figures; asserts nothing
about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def _reset_hwm(pid: int | None) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except (OSError, TypeError):
        pass


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
    parser.add_argument("--steps", default="full_t0,incremental_t1,full_t1",
                        help="run only these steps (a later step reuses what an earlier run of the bench left)")
    args = parser.parse_args(argv)
    folder = BENCH_DIR / f"c360_{args.customers}_{args.orders_per_day}_{args.days}"
    t = time.perf_counter()
    t0, t1 = make_inputs(folder, args.customers, args.orders_per_day, args.days)
    print(f"inputs ready in {time.perf_counter() - t:.1f} s: {json.loads((folder / 'done.json').read_text())}")
    spec = load_segments().spec()
    work = folder / "runs"
    wanted = args.steps.split(",")
    if wanted[:1] == ["full_t0"]:
        shutil.rmtree(work, ignore_errors=True)
    port = _free_port()
    t = time.perf_counter()
    spark_runner.ensure_local_server(port)
    figures = {"cores": os.cpu_count(), "connect_server_startup_s": round(time.perf_counter() - t, 1)}
    pid = spark_runner._recorded_pid()
    try:
        steps = [
            ("full_t0", dict(inputs=inputs(folder, "t0"), as_of=t0, out=str(work / "full_t0"),
                             state_out=str(work / "state_t0"))),
            ("incremental_t1", dict(inputs=inputs(folder, "t1", changes=True), as_of=t1, out=str(work / "inc_t1"),
                                    state_in=str(work / "state_t0"), state_out=str(work / "state_t1"))),
            ("full_t1", dict(inputs=inputs(folder, "t1"), as_of=t1, out=str(work / "full_t1"))),
        ]
        for name, kw in [step for step in steps if step[0] in wanted]:
            _reset_hwm(pid)
            t = time.perf_counter()
            spark = jobkit.session(f"bench-c360-{name}", f"sc://127.0.0.1:{port}")
            counts = job.run(spark, spec=spec, **kw)
            spark.stop()
            figures[f"{name}_s"] = round(time.perf_counter() - t, 1)
            figures[f"{name}_peak_mb"] = _vm_hwm_mb(pid)
            figures[f"{name}_counts"] = counts
            print(name, figures[f"{name}_s"], "s", counts, flush=True)
        if "full_t1" not in wanted:
            print(json.dumps(figures, default=str))
            return 0
        spark = jobkit.session("bench-c360-compare", f"sc://127.0.0.1:{port}")
        differ = {}
        for name in ("rfm", "segment_membership", "customer_profile"):
            a, b = (spark.read.parquet(str(work / run / name)) for run in ("inc_t1", "full_t1"))
            differ[name] = a.exceptAll(b).count() + b.exceptAll(a).count()
        replaced = spark.read.parquet(str(work / "inc_t1" / "orders_enriched_replaced"))
        full = spark.read.parquet(str(work / "full_t1" / "orders_enriched")).join(replaced, "order_id", "left_semi")
        delta = spark.read.parquet(str(work / "inc_t1" / "orders_enriched"))
        differ["orders_enriched (replaced orders)"] = full.exceptAll(delta).count() + delta.exceptAll(full).count()
        spark.stop()
        figures["rows_differing"] = differ
    finally:
        spark_runner.stop_local_server()
    figures["speedup_vs_full_t1"] = round(figures["full_t1_s"] / figures["incremental_t1_s"], 1)
    print(json.dumps(figures, default=str))
    print(f"customer_360 job, {args.customers:,} customers, {args.orders_per_day:,} orders/day over {args.days} days, "
          f"{figures['cores']} cores: full rebuild (T0, leaving state) {figures['full_t0_s']} s "
          f"(peak {figures['full_t0_peak_mb']} MB) | incremental day {figures['incremental_t1_s']} s "
          f"(peak {figures['incremental_t1_peak_mb']} MB) | full rebuild (T1) {figures['full_t1_s']} s "
          f"(peak {figures['full_t1_peak_mb']} MB) | {figures['speedup_vs_full_t1']}x | rows differing: {differ}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
