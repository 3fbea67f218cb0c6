"""The local lake holds raw PII: what c360 writes there is owner-only (files 0600, folders 0700), whether the
Python extract wrote it or the Spark Connect server did.

Real run: the generator fills the embedded PostgreSQL, ``steps.extract`` writes the raw partition and the stage
job runs over Spark Connect (this session's local server), as the customer DAG's first two tasks do.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from c360 import generator, lake, settings, steps, warehouse
from c360.registry import load_registry

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=300, days=2, orders_per_day=20, sessions_per_hour=2)
INTERVAL = warehouse.Interval(start=datetime(2026, 11, 20, tzinfo=UTC), end=datetime(2026, 11, 21, tzinfo=UTC),
                          run_id="permissions", dag_id="customer_daily")


def _open_to_others(root: Path) -> list[str]:
    """Every file and folder under ``root`` (itself included) with a group or other permission bit."""
    found = []
    for p in [root, *root.rglob("*")]:
        mode = p.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{oct(stat.S_IMODE(mode))} {p}")
    return found


def test_extract_and_spark_stage_write_owner_only_lake_files(platform):
    from c360.dag_factory import stage_spec
    from c360.spark_runner import run_connect_job

    generator.load_sources(generator.generate(SCALE))
    ds = load_registry()["customer"]
    extracted = steps.extract(ds, INTERVAL, steps.FULL)
    assert extracted["raw_rows"] > 0
    args = ["--dataset", ds.name, "--spec", stage_spec(ds)]
    for layer in ("raw", "stage", "quarantine"):
        args += [f"--{layer}", lake.spark_uri(extracted[layer])]
    run_connect_job(str(settings.SPARK_DIR / "stage_job.py"), args, f"sc://127.0.0.1:{settings.spark_connect_port()}")

    root = lake.local_path(settings.lake_uri())
    open_to_others = {}
    for layer in ("raw", "stage", "quarantine"):
        partition = lake.local_path(extracted[layer])
        assert [p for p in partition.rglob("*") if p.is_file()], f"nothing written in {partition}"
        # the partition, what is in it, and the folders above it up to the lake root
        above = [p for p in partition.parents if p == root or root in p.parents]
        open_to_others[layer] = _open_to_others(partition) + [
            f"{oct(stat.S_IMODE(p.stat().st_mode))} {p}" for p in above if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert open_to_others == {"raw": [], "stage": [], "quarantine": []}
