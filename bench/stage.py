"""Benchmark: the staging transform of a full load (orders) in Spark against DuckDB doing the same work.

    python bench/stage.py                  # 20M raw rows (the default scale's first load of orders)
    python bench/stage.py --rows 2000000

The raw rows are what ``extract_to_raw`` writes for the orders' first load: Parquet, every column as the
source's text, files of ~750k rows in 256k-row groups (``c360.pgcsv``). They are synthetic (cached in
``.state/bench/``) and hostile where the production data would be: ~8% of the keys have older versions in the
same load (some with the same ``updated_at``, so the tie-break on the row's content decides), and a small
share of rows have an unparsable timestamp or amount or a blank required value; text columns hold quotes,
commas, line breaks, backslashes and non-ASCII text.

Spark runs ``stage_job.run`` (typing, quarantine with reasons, latest version per key) as a Spark Connect
client of a just-started local server, as the DAG's ``stage_with_spark`` does; it runs twice (the first job
on a fresh server, then the same job on the now warm server). DuckDB runs the same definitions in SQL on
the same files in a child process (its peak RSS is the child's). Both write stage and quarantine Parquet;
the outputs are compared row for row, then the figures are printed with the machine's core count. The
Spark server's peak RSS is its JVM's VmHWM. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "include" / "spark")]
BENCH_DIR = ROOT / ".state" / "bench"
FILE_ROWS = 750_000


def spec() -> dict:
    """The orders' stage spec, as ``c360.dag_factory.stage_spec`` gives it to the job."""
    from c360.registry import load_registry, spark_columns

    ds = load_registry()["orders"]
    return {"columns": spark_columns(ds.columns), "business_key": list(ds.business_key),
            "version_column": ds.version_column}


def make_raw(path: Path, rows: int, seed: int = 11) -> None:
    """``rows`` raw order rows as text Parquet files (see the module docstring for what they hold)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    keys = int(rows * 0.92)
    # every key once, then ~8% more rows drawn from the keys: other versions of them
    order_no = np.concatenate([np.arange(keys), rng.integers(0, keys, rows - keys)])
    rng.shuffle(order_no)

    def text(values) -> pa.Array:
        return pc.cast(pa.array(values), pa.string())

    def fmt_ts(secs: np.ndarray) -> pa.Array:
        ts = pa.array(np.datetime64("2025-10-17T00:00:00", "s") + secs.astype("timedelta64[s]"))
        return pc.strftime(ts, format="%Y-%m-%d %H:%M:%S")

    addresses = np.array(['12 "Old" Mill Rd, Apt 4', "Flat 2\nHigh St\\North", "Königstraße 5, Köln",
                          "1, rue de l'Église", "  padded  ", "", "PO Box 7; Leeds"], dtype=object)
    path.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, rows, FILE_ROWS)):  # a file at a time: bounded memory at 20M rows
        ids = order_no[start:start + FILE_ROWS]
        size = len(ids)

        def spoil(arr: pa.Array, share: float, bad: list[str], size: int = size) -> pa.Array:
            mask = rng.random(size) < share
            replacement = pa.array(rng.choice(np.array(bad, dtype=object), size).astype(str))
            return pc.if_else(pa.array(mask), replacement, arr)

        placed = rng.integers(0, 400 * 86_400, size)
        # the version: after the order was placed; ~1/3 of the versions of a key share one hour (a tie)
        updated = placed + rng.integers(0, 3, size) * 3_600
        amount = np.round(rng.gamma(2.0, 45.0, size), 2)
        table = pa.table({
            "order_id": pc.binary_join_element_wise("O", text(ids), ""),
            "customer_id": spoil(pc.binary_join_element_wise("C", text(rng.integers(0, rows // 20, size)), ""),
                                 0.002, [""]),
            "order_date": spoil(fmt_ts(placed), 0.001, ["2026-02-30 10:00:00", "yesterday", "", "  "]),
            "order_status": pa.array(rng.choice(np.array(["delivered", "shipped", "processing", "cancelled",
                                                          "returned"]), size)),
            "order_delivery_date": spoil(fmt_ts(placed + 3 * 86_400), 0.3, [""]),
            "discounted_amount": text(np.round(amount * 0.1, 2)),
            "shipping_amount": spoil(text(np.round(rng.gamma(1.0, 4.0, size), 2)), 0.001, ["4,99", "free"]),
            "total_amount": spoil(text(amount), 0.001, ["12..5", "n/a", " "]),
            "payment_method": pa.array(rng.choice(np.array(["card", "paypal", "voucher", ""]), size)),
            "billing_address": pa.array(rng.choice(addresses, size).astype(str)),
            "shipping_address": pa.array(rng.choice(addresses, size).astype(str)),
            "transaction_id": pc.binary_join_element_wise("T", text(ids), ""),
            "updated_at": spoil(fmt_ts(updated), 0.0005, ["", "2026-13-01 00:00:00"]),
        })
        pq.write_table(table, path / f"part-{n:05d}.parquet", compression="snappy", row_group_size=256_000)


def run_spark(raw: Path, out: Path, job_spec: dict, runs: int = 2) -> tuple[float, list[float], int, int | None]:
    """(server start-up, each job's wall time, raw rows, the server JVM's peak RSS in MB)."""
    import jobkit
    import stage_job
    from c360 import spark_runner

    port = _free_port()
    t0 = time.perf_counter()
    spark_runner.ensure_local_server(port)
    startup = time.perf_counter() - t0
    timings, counted, peak = [], 0, None
    try:
        for _ in range(runs):
            t1 = time.perf_counter()
            spark = jobkit.session("bench-stage", f"sc://127.0.0.1:{port}")
            counted = stage_job.run(spark, job_spec, str(raw), str(out / "spark_stage"),
                                    str(out / "spark_quarantine"))["raw"]
            spark.stop()
            timings.append(time.perf_counter() - t1)
        peak = _vm_hwm_mb(spark_runner._recorded_pid())
    finally:
        spark_runner.stop_local_server()
    return startup, timings, counted, peak


def _vm_hwm_mb(pid: int | None) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except (OSError, TypeError):
        return None
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DUCKDB_TYPES = {"string": "varchar", "timestamp": "timestamptz", "timestamp_ntz": "timestamp", "double": "double", "int": "integer",
                "bigint": "bigint", "date": "date", "boolean": "boolean"}


def duckdb_sql(raw: Path, out: Path, job_spec: dict) -> list[str]:
    """The stage job's definitions in DuckDB SQL (stage_job's module docstring)."""
    cols = job_spec["columns"]
    key, version = job_spec["business_key"], job_spec["version_column"]

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    def raw_name(name: str) -> str:
        return f"_raw_{name}"

    raws, typed, reasons = [], [], []
    for c in cols:
        n, t = c["name"], c["type"]
        if t not in DUCKDB_TYPES:
            raise SystemExit(f"bench/stage.py: no DuckDB type for {n}: {t}")
        r = raw_name(n)
        raws.append(f"{q(n)} as {q(r)}" if t == "string"
                    else f"case when trim({q(n)}) = '' then null else {q(n)} end as {q(r)}")
        typed.append(q(r) + f" as {q(n)}" if t == "string" else f"try_cast({q(r)} as {DUCKDB_TYPES[t]}) as {q(n)}")
        if t != "string":
            invalid = lit(f"{n}: '%s' is not a valid {t}")
            reasons.append(f"case when {q(r)} is not null and {q(n)} is null then printf({invalid}, {q(r)}) end")
        if not c.get("nullable", True):
            reasons.append(f"case when {q(r)} is null or trim({q(r)}) = '' then {lit(f'{n}: required value is missing')} end")
    names = [c["name"] for c in cols]
    tie_break = ", ".join(f"{q(n)} desc nulls last" for n in names if n != version)
    key_text = " || ', ' || ".join(f"{lit(k + '=')} || {q(k)}" for k in key)
    reason = f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else "null"
    return [
        f"create temp table checked as select *, {reason} as _reject_reason from ("
        f"select *, {', '.join(typed)} from ("
        f"select {', '.join(raws)}, regexp_extract(filename, '[^/]*$') as _source_file "
        f"from read_parquet('{raw}/*.parquet', filename = true)))",
        f"create temp table ranked as select *, row_number() over (partition by {', '.join(q(k) for k in key)} "
        f"order by {q(version)} desc nulls last, {tie_break}) as _rank from checked where _reject_reason is null",
        f"copy (select {', '.join(q(n) for n in names)} from ranked where _rank = 1) "
        f"to '{out}/duckdb_stage.parquet' (format parquet)",
        f"copy (select {', '.join(f'{q(raw_name(n))} as {q(n)}' for n in names)}, _reject_reason, _source_file "
        f"from checked where _reject_reason is not null union all "
        f"select {', '.join(q(raw_name(n)) for n in names)}, "
        f"'superseded: a newer version of ' || {key_text} || ' is in the same interval', _source_file "
        f"from ranked where _rank > 1) to '{out}/duckdb_quarantine.parquet' (format parquet)",
    ]


def run_duckdb_child(raw: Path, out: Path, job_spec: dict) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute(f"set temp_directory = '{out}/duckdb_tmp'")
    t0 = time.perf_counter()
    for stmt in duckdb_sql(raw, out, job_spec):
        con.execute(stmt)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def run_duckdb(raw: Path, out: Path) -> tuple[float, int]:
    """(DuckDB's wall time, the child process's peak RSS in MB), in a child process of its own."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, __file__, "--duckdb-child", str(raw), str(out)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"bench/stage.py: the DuckDB reference failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest child's: this is the only child so far, or a larger one
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"], max(peak, before) // 1024


def compare(out: Path, job_spec: dict) -> dict[str, int]:
    """Stage and quarantine of both engines, row for row (timestamps compared as UTC instants)."""
    import duckdb

    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")

    def cols(typed: bool) -> str:
        out_cols = []
        for c in job_spec["columns"]:
            n = '"' + c["name"] + '"'
            out_cols.append(f"cast({n} as timestamp) as {n}" if typed and c["type"].startswith("timestamp") else n)
        return ", ".join(out_cols)

    checks = {}
    for name, sel in (("stage", cols(True)), ("quarantine", cols(False) + ", _reject_reason, _source_file")):
        spark_rel = f"(select {sel} from read_parquet('{out}/spark_{name}/*.parquet'))"
        duck_rel = f"(select {sel} from read_parquet('{out}/duckdb_{name}.parquet'))"
        diff = con.execute(f"select count(*) from ({spark_rel} except all {duck_rel}) union all "
                           f"select count(*) from ({duck_rel} except all {spark_rel})").fetchall()
        rows = con.execute(f"select count(*) from {duck_rel}").fetchone()[0]
        if diff[0][0] or diff[1][0]:
            sample = con.execute(f"select * from ({spark_rel} except all {duck_rel}) limit 3").fetchall()
            raise SystemExit(f"{name}: Spark and DuckDB differ ({diff[0][0]} / {diff[1][0]} rows of {rows}); "
                             f"Spark-only rows, e.g. {sample}")
        checks[name] = rows
    return checks


def measure(rows: int) -> dict:
    os.environ.setdefault("SODA_CORE_TELEMETRY_ENABLED", "false")
    from c360 import settings
    from c360.java import java_home

    jhome = java_home(settings.state_dir())
    if jhome:
        os.environ["JAVA_HOME"] = jhome
    data = BENCH_DIR / f"stage_orders_{rows}"
    raw = data / "raw"
    if not (data / "complete").exists():
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        make_raw(raw, rows)
        (data / "complete").touch()
        print(f"generated {rows:,} raw order rows in {time.perf_counter() - t0:.1f} s")
    out = data / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    job_spec = spec()
    duck, duck_mb = run_duckdb(raw, out)
    startup, timings, counted, spark_mb = run_spark(raw, out, job_spec)
    result = compare(out, job_spec)
    if result["stage"] + result["quarantine"] != counted:
        raise SystemExit(f"stage {result['stage']} + quarantine {result['quarantine']} != raw {counted}")
    return {"raw_rows": counted, "cores": os.cpu_count(), "duckdb_s": round(duck, 1), "duckdb_peak_mb": duck_mb,
            "spark_first_s": round(timings[0], 1), "spark_next_s": round(timings[-1], 1),
            "spark_server_peak_mb": spark_mb, "connect_server_startup_s": round(startup, 1),
            "ratio_first": round(timings[0] / duck, 2), "ratio_next": round(timings[-1] / duck, 2),
            "stage_rows": result["stage"], "quarantine_rows": result["quarantine"], "results_identical": True}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--duckdb-child"]:
        run_duckdb_child(Path(argv[1]), Path(argv[2]), spec())
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    args = parser.parse_args(argv)
    r = measure(args.rows)
    print(json.dumps(r))
    print(f"stage orders, {r['raw_rows']:,} raw rows on {r['cores']} cores: DuckDB {r['duckdb_s']:.1f} s "
          f"(peak {r['duckdb_peak_mb']:,} MB) | Spark, first job on a fresh Connect server {r['spark_first_s']:.1f} s "
          f"({r['ratio_first']:.2f}x; server start {r['connect_server_startup_s']:.1f} s), next job "
          f"{r['spark_next_s']:.1f} s ({r['ratio_next']:.2f}x; server peak {r['spark_server_peak_mb']} MB) | "
          f"results identical ({r['stage_rows']:,} staged, {r['quarantine_rows']:,} quarantined)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
