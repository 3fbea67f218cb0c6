"""Re-measure the publishing target on the state a `make bench` run left behind (no regeneration).

Takes the largest stage partition of a dataset (by default order_line_item, its bootstrap), recreates the
published table empty, and times what the bootstrap's tasks do (`load_staging` then `publish`, the same
functions) against a bare COPY of the same rows into a table without keys; the COPY is timed before and after,
and the faster is the reference. Usage: `python bench/publishing.py [dataset]`.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from c360 import warehouse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "include"))
os.environ["C360_STATE_DIR"] = str(ROOT / ".state" / "bench-platform")


def main(argv: list[str]) -> int:
    from daily_platform import bare_copy_seconds
    from psycopg import sql

    from c360 import lake, pg, settings, steps
    from c360.registry import load_registry

    settings.apply_runtime_env()
    ds = load_registry()[argv[0] if argv else "order_line_item"]
    root = lake.path(f"{settings.lake_uri()}/stage/{ds.name}")
    if not root.exists():
        raise SystemExit(f"no stage partitions under {root}: run `make bench` first")
    parts = {p.name: warehouse.parquet_dataset(f"{settings.lake_uri()}/stage/{ds.name}/{p.name}").count_rows()
             for p in root.iterdir() if p.name.startswith("interval=")}
    part = max(parts, key=parts.get)
    extracted = {"stage": f"{settings.lake_uri()}/stage/{ds.name}/{part}",
                 "quarantine": f"{settings.lake_uri()}/quarantine/{ds.name}/{part}", "mode": steps.FULL}
    extracted["raw_rows"] = parts[part] + warehouse.parquet_dataset(extracted["quarantine"]).count_rows()
    now = datetime.now(UTC)
    interval = warehouse.Interval(now, now, "bench-publishing", "bench_publishing")
    pg.start_embedded()
    stage = warehouse.conform(warehouse.parquet_dataset(extracted["stage"]).to_table(), ds.columns)
    before = bare_copy_seconds(ds, stage)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(sql.SQL("drop table if exists {} cascade").format(warehouse.ident(ds.output.table)))
    t0 = time.time()
    loaded = steps.load_staging(ds, interval, extracted, interval.dag_id)
    t_load = time.time() - t0
    t0 = time.time()
    steps.publish(ds, interval, loaded)
    t_publish = time.time() - t0
    after = bare_copy_seconds(ds, stage)
    rows = loaded["staged_rows"]
    rate, ref = rows / (t_load + t_publish), rows / min(before, after)
    print(f"{ds.name}, {rows:,} rows ({part}), {settings.copy_streams()} COPY stream(s)\n"
          f"  load_to_staging {t_load:.1f} s + publish_table {t_publish:.1f} s = {rate:,.0f} rows/s\n"
          f"  bare COPY {before:.1f} s before, {after:.1f} s after: {ref:,.0f} rows/s (the faster)\n"
          f"  publishing at {rate / ref:.0%} of a bare COPY (target >= 70%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
