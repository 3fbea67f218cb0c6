"""Benchmark: the RFM + segments Spark job against DuckDB computing the same result on the same data.

    make bench-rfm                     # 1M customers, 20M orders (defaults)
    python bench/rfm.py --customers 100000 --orders 2000000

Synthetic orders (Parquet, cached in .state/bench/) are read by both engines. Spark runs the job's
functions (``rfm`` + ``audience_metrics`` + ``segment_membership`` with the order-based audiences) as a Spark
Connect client of a just-started local server (local[*]), as the DAGs do, and writes Parquet; DuckDB runs
the same definitions in SQL and writes Parquet (median of three runs). The two results are compared row for
row, then the timings are printed: the job's first run on the fresh server, and the median of the next four
(the steady state of a long-lived server: the JVM's JIT compiles the job's paths over its first few runs,
so the second run alone still pays some of it). The server's start-up is measured separately; a DAG run
pays it once per server, not per job. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "include" / "spark")]
AS_OF = datetime(2026, 11, 21)
BENCH_DIR = ROOT / ".state" / "bench"  # the generated orders are kept here between runs


def make_orders(path: Path, customers: int, orders: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    ids = pa.array(np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 8)))
    # long-tailed activity: a few customers order a lot
    weights = rng.pareto(1.5, customers) + 0.05
    who = rng.choice(customers, orders, p=weights / weights.sum())
    secs = rng.integers(0, 400 * 86_400, orders)
    order_date = np.datetime64(AS_OF, "s") - secs.astype("timedelta64[s]")
    status = rng.choice(np.array(["delivered", "shipped", "processing", "cancelled", "returned"]), orders,
                        p=[0.72, 0.1, 0.08, 0.05, 0.05])
    amount = np.round(rng.gamma(2.0, 45.0, orders), 2)
    amount[rng.random(orders) < 0.01] = 0.0
    refunds = rng.random(orders) < 0.01
    amount[refunds] = -amount[refunds]
    table = pa.table({
        "order_id": pc.binary_join_element_wise("O", pc.cast(pa.array(np.arange(orders)), pa.string()), ""),
        "customer_id": pc.take(ids, pa.array(who)),
        "order_date": pa.array(order_date.astype("datetime64[us]")),
        "order_status": pa.array(status),
        "total_amount": pa.array(amount),
    })
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "orders.parquet", row_group_size=1_000_000)


def order_audiences(spec: dict) -> dict:
    """The audiences whose metrics come from orders alone (the benchmark has no line items or web data)."""
    metrics = {k: m for k, m in spec["metrics"].items() if m["kind"] in ("order_value", "order_count")}
    audiences = [a for a in spec["audiences"] if a["metric"] in metrics]
    return {**spec, "metrics": metrics, "audiences": audiences}


NEXT_RUNS = 4  # jobs after the first: a JVM's JIT keeps compiling over the first few; their median is reported


def run_spark(data: Path, out: Path, spec: dict) -> tuple[float, float, float]:
    """(server start-up, the job on a just-started Spark Connect server, the median of the next NEXT_RUNS runs
    of the same job on the now warm server). The DAGs run transforms this way: a long-lived local server, no
    JVM start per job."""
    import customer360_job as job
    from pyspark.sql import functions as F

    import jobkit
    from c360 import spark_runner

    port = _free_port()
    t0 = time.perf_counter()
    spark_runner.ensure_local_server(port)  # starts the JVM and runs its warm-up query, as a DAG task would
    startup = time.perf_counter() - t0
    timings = []
    try:
        for _ in range(1 + NEXT_RUNS):
            t1 = time.perf_counter()
            spark = jobkit.session("bench-rfm", f"sc://127.0.0.1:{port}")
            orders = spark.read.parquet(str(data / "orders.parquet")).withColumn(
                "order_date", F.col("order_date").cast("timestamp_ntz"))
            excluded = spec["rfm"]["excluded_statuses"]
            stats = job.order_stats(orders, AS_OF, spec["rfm"], spec["metrics"]).cache()  # as run() does
            rfm = job.rfm(orders, AS_OF, spec["rfm"], spec["rfm_segments"], stats).cache()
            empty = spark.createDataFrame([], "order_id string, product_id string, qty int")
            metrics = job.audience_metrics(orders, empty, empty, empty, AS_OF, spec["metrics"], excluded, stats)
            members = job.segment_membership(metrics, spec["audiences"], rfm, AS_OF)
            rfm.write.mode("overwrite").parquet(str(out / "spark_rfm"))
            members.write.mode("overwrite").parquet(str(out / "spark_segments"))
            for df in (rfm, stats):  # as run() does: a Connect server's cache outlives the session
                df.unpersist()
            spark.stop()
            timings.append(time.perf_counter() - t1)
    finally:
        spark_runner.stop_local_server()
    return startup, timings[0], statistics.median(timings[1:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_duckdb(data: Path, out: Path, spec: dict, runs: int = 3) -> float:
    """The median of ``runs`` runs of the DuckDB reference (each writes its Parquet files anew)."""
    return statistics.median(_run_duckdb(data, out, spec) for _ in range(runs))


def _run_duckdb(data: Path, out: Path, spec: dict) -> float:
    import duckdb

    from c360.segments import load_segments

    seg = load_segments()
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    excluded = spec["rfm"]["excluded_statuses"]
    params = {"as_of": AS_OF, "excluded": excluded}
    con.execute(f"create view orders as select * from read_parquet('{data / 'orders.parquet'}')")
    con.execute("""
        create table rfm as
        with p as (
            select customer_id, order_id, order_date, cast(total_amount as decimal(18, 2)) as amount from orders
            where order_date < $as_of and order_date >= $as_of - to_days($window)
              and (order_status is null or order_status not in (select unnest($excluded))) and customer_id is not null
        ), c as (
            select customer_id, cast(max(order_date) as date) as last_order_date,
                   date_diff('day', cast(max(order_date) as date), cast($as_of as date)) as recency_days,
                   count(distinct order_id) as frequency, sum(amount) as monetary
            from p group by customer_id
        ), n as (select count(*) as n from c)
        select customer_id, last_order_date, recency_days, frequency, monetary,
               cast(1 + floor(5 * (rank() over (order by -recency_days) - 1) / n) as int) as r_score,
               cast(1 + floor(5 * (rank() over (order by frequency) - 1) / n) as int) as f_score,
               cast(1 + floor(5 * (rank() over (order by monetary) - 1) / n) as int) as m_score
        from c, n""", {**params, "window": spec["rfm"]["window_days"]})
    # the segment mapping: first matching rule, as a CASE built from the same data
    cases = " ".join(
        f"when r_score between {s.r[0]} and {s.r[1]} and f_score between {s.f[0]} and {s.f[1]} "
        f"and m_score between {s.m[0]} and {s.m[1]} then '{s.name}'" for s in seg.rfm_segments)
    con.execute(f"create table rfm_out as select *, r_score::varchar || f_score::varchar || m_score::varchar "
                f"as rfm_score, case {cases} end as rfm_segment from rfm")
    selects = ["select rfm_segment as segment_name, customer_id, 'rfm' as segment_type from rfm_out"]
    for a in spec["audiences"]:
        m = spec["metrics"][a["metric"]]
        value = "sum(cast(total_amount as decimal(18, 2)))" if m["kind"] == "order_value" else "count(distinct order_id)"
        selects.append(
            f"select '{a['name']}', customer_id, 'audience' from orders "
            f"where order_date < $as_of and order_date >= $as_of - to_days({m['window_days']}) "
            f"and (order_status is null or order_status not in (select unnest($excluded))) "
            f"and customer_id is not null group by customer_id having {value} >= {float(a['at_least'])}")
    con.execute("create table segments as " + " union all ".join(selects), params)
    con.execute(f"copy rfm_out to '{out / 'duckdb_rfm.parquet'}' (format parquet)")
    con.execute(f"copy segments to '{out / 'duckdb_segments.parquet'}' (format parquet)")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def compare(out: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect()
    checks = {}
    for name, cols in (("rfm", "customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, "
                                "rfm_score, rfm_segment"),
                       ("segments", "segment_name, customer_id, segment_type")):
        spark_rel = f"(select {cols} from read_parquet('{out}/spark_{name}/*.parquet'))"
        duck_rel = f"(select {cols} from read_parquet('{out}/duckdb_{name}.parquet'))"
        diff = con.execute(f"select count(*) from ({spark_rel} except all {duck_rel}) union all "
                           f"select count(*) from ({duck_rel} except all {spark_rel})").fetchall()
        rows = con.execute(f"select count(*) from {duck_rel}").fetchone()[0]
        if diff[0][0] or diff[1][0]:
            raise SystemExit(f"{name}: Spark and DuckDB differ ({diff[0][0]} / {diff[1][0]} rows of {rows})")
        checks[name] = rows
    return checks


def measure(customers: int, orders: int) -> dict:
    """Generate (or reuse) the orders, run both engines, compare the results; returns the figures."""
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    from c360 import settings
    from c360.java import java_home
    from c360.segments import load_segments

    jhome = java_home(settings.state_dir())
    if jhome:
        os.environ["JAVA_HOME"] = jhome
    data = BENCH_DIR / f"orders_{customers}_{orders}"
    if not (data / "orders.parquet").exists():
        t0 = time.perf_counter()
        make_orders(data, customers, orders)
        print(f"generated {orders:,} orders of {customers:,} customers in {time.perf_counter() - t0:.1f} s")
    out = data / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    spec = order_audiences(load_segments().spec())
    duck = run_duckdb(data, out, spec)
    startup, cold, warm = run_spark(data, out, spec)
    rows = compare(out)
    return {"customers": customers, "orders": orders, "cores": os.cpu_count(),
            "duckdb_s": round(duck, 1), "spark_cold_s": round(cold, 1), "spark_warm_s": round(warm, 1),
            "connect_server_startup_s": round(startup, 1), "ratio_cold": round(cold / duck, 2),
            "ratio_warm": round(warm / duck, 2), "rfm_rows": rows["rfm"], "segment_rows": rows["segments"],
            "results_identical": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=20_000_000)
    args = parser.parse_args(argv)
    r = measure(args.customers, args.orders)
    duck, cold, warm = r["duckdb_s"], r["spark_cold_s"], r["spark_warm_s"]
    print(json.dumps(r))
    print(f"RFM + segments, {args.customers:,} customers / {args.orders:,} orders on {os.cpu_count()} cores: "
          f"DuckDB {duck:.1f} s | Spark, first job on a fresh Connect server {cold:.1f} s ({r['ratio_cold']:.2f}x; "
          f"the server started in {r['connect_server_startup_s']:.1f} s) | Spark, next jobs {warm:.1f} s "
          f"({r['ratio_warm']:.2f}x, median of {NEXT_RUNS}) | results identical ({r['rfm_rows']:,} RFM rows, "
          f"{r['segment_rows']:,} memberships)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
