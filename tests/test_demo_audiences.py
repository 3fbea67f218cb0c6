"""Every seed audience has members in what `make demo` publishes: the demo's generated data, cut as its runs cut
it, through the Customer 360 Spark job's functions (composed as its ``run`` does) on the shared local Spark
session.

The demo runs each DAG once for its latest interval before the demo instant: a dataset's first run is a full
load of the rows dated before its interval end, but web analytics loads only its interval's hour of GA exports
(23:00–24:00). So the web activity the Customer 360 job sees is that one hour, parsed by the web analytics job.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from c360 import cli, generator, runs, steps, warehouse
from c360.registry import arrow_schema, load_registry
from c360.segments import load_segments

job = pytest.importorskip("customer360_job")
web_job = pytest.importorskip("web_analytics_job")


def _demo_interval(schedule: str, run_after: datetime) -> tuple[datetime, datetime]:
    """The data interval dag.test(logical_date=run_after) runs: the latest complete one (as
    CronDataIntervalTimetable.infer_manual_data_interval)."""
    from croniter import croniter

    naive = run_after.replace(tzinfo=None)
    end = naive if croniter.match(schedule, naive) else croniter(schedule, naive).get_prev(datetime)
    return croniter(schedule, end).get_prev(datetime), end


def test_every_seed_audience_has_members_in_the_demo(spark, tmp_path):
    from pyspark.sql import functions as F

    scale = cli.demo_scale()
    data = generator.generate(scale)
    registry = load_registry()
    derived = registry.derived["customer_360"]
    as_of = runs.demo_logical_date()
    assert _demo_interval(derived.cadence.schedule, as_of)[1] == as_of.replace(tzinfo=None)

    inputs = {}
    for name in derived.inputs:
        ds = registry[name]
        start, end = _demo_interval(ds.cadence.schedule, as_of)
        target = tmp_path / "inputs" / name
        target.mkdir(parents=True)
        if ds.source.system == "ga_export":  # the interval's hours of exports, staged by the web analytics job
            hours = steps.landing_hours(ds, warehouse.Interval(start, end, "demo"))
            assert hours == ["dt=2026-11-20/hr=23"], hours
            raw = tmp_path / "landing"
            raw.mkdir()
            for rel, content in data.ga_files.items():
                if any(rel.startswith(h) for h in hours):
                    (raw / rel.replace("/", "_")).write_bytes(content)
            (tmp_path / "visitor_map.csv").write_bytes(data.visitor_map)
            vmap = web_job.read_visitor_map(spark, str(tmp_path / "visitor_map.csv"))
            parsed = web_job.parse(web_job.read_lines(spark, str(raw)))
            web_job.flatten(parsed.filter(F.col(web_job.REASON).isNull()), vmap) \
                .write.mode("overwrite").parquet(str(target))
        else:  # the bootstrap's full load: every row dated before the interval end
            table = data.tables[name]
            dated = table[ds.source.watermark]
            table = table.filter(pc.less(dated, pa.scalar(end, dated.type)))
            pq.write_table(table.select(ds.column_names).cast(arrow_schema(ds.columns)),
                           target / "part-00000.parquet")
        inputs[name] = str(target)

    # the job's segment membership as its run() composes it (its other outputs are not needed here)
    read = {name: spark.read.parquet(uri) for name, uri in inputs.items()}
    spec, day = load_segments().spec(), as_of.replace(tzinfo=None)
    stats = job.order_stats(read["orders"], day, spec["rfm"], spec["metrics"])
    rfm_rows = job.rfm(read["orders"], day, spec["rfm"], spec["rfm_segments"], stats)
    metrics = job.audience_metrics(read["orders"], read["order_line_item"], read["product"], read["web_analytics"],
                                   day, spec["metrics"], spec["rfm"].get("excluded_statuses", []), stats)
    members = job.segment_membership(metrics, spec["audiences"], rfm_rows, day)
    sizes = {r["segment_name"]: r["count"]
             for r in members.filter(F.col("segment_type") == "audience").groupBy("segment_name").count().collect()}
    audiences = [a.name for a in load_segments().audiences]
    assert all(sizes.get(a, 0) > 0 for a in audiences), {a: sizes.get(a, 0) for a in audiences}
