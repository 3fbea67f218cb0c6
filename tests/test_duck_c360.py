"""The DuckDB reference of bench/duck_c360.py against the Customer 360 job on a small generated dataset: all
four outputs row for row (the profile JSON byte for byte), with web sessions (abandoned carts, a preferred
channel, recent sessions) that the bench's empty web analytics never exercises."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from c360 import generator
from c360.registry import arrow_schema, load_registry
from c360.segments import load_segments

job = pytest.importorskip("customer360_job")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import duck_c360  # noqa: E402

TABLES = ("customer", "product", "brand", "orders", "order_line_item", "transactions")


def _web(as_of, customers: list[str]) -> list[dict]:
    """Sessions of the first customers: carts abandoned (twice: an audience member), a cart bought, channels
    (a tie broken by name), one session older than 30 days and one after the as-of."""
    rows = []

    def hit(session: str, who: str, days: float, action: str, channel: str) -> None:
        rows.append({"activity_uuid": f"{session}-{len(rows)}", "session_id": session, "entity_id": who,
                     "activity_ts": as_of - timedelta(days=days), "event_action": action,
                     "traffic_channel": channel})

    a, b, c = customers[:3]
    hit("S1", a, 2, "add_to_cart", "Organic Search")
    hit("S2", a, 3, "add_to_cart", "Email")
    hit("S2", a, 3, "page_view", "Email")
    hit("S3", b, 1, "add_to_cart", "Direct")
    hit("S3", b, 1, "order_placed", "Direct")
    hit("S4", b, 40, "add_to_cart", "Referral")   # outside the 30-day windows, inside 90 days
    hit("S5", c, -1, "add_to_cart", "Direct")     # after the as-of: not seen
    hit("S6", None, 1, "add_to_cart", "Direct")   # anonymous
    return rows


def test_duckdb_reference_equals_the_job(spark, tmp_path):
    scale = generator.Scale(customers=200, days=90, orders_per_day=12, sessions_per_hour=1, ga_days=1, seed=5)
    data = generator.generate(scale)
    registry = load_registry()
    as_of = scale.end_ts - timedelta(days=3)  # the later orders must be left out
    inputs = {}
    for name in TABLES:
        schema = arrow_schema(registry[name].columns)
        inputs[name] = str(tmp_path / "in" / name)
        Path(inputs[name]).mkdir(parents=True)
        pq.write_table(data.tables[name].select(schema.names).cast(schema), f"{inputs[name]}/part-0.parquet")
    web_schema = arrow_schema(registry["web_analytics"].columns)
    inputs["web_analytics"] = str(tmp_path / "in" / "web_analytics")
    Path(inputs["web_analytics"]).mkdir()
    customers = data.tables["customer"]["customer_id"].to_pylist()
    pq.write_table(pa.Table.from_pylist(_web(as_of, customers), schema=web_schema),
                   f"{inputs['web_analytics']}/part-0.parquet")
    inputs["visitor_map"] = str(tmp_path / "in" / "visitor_map")
    Path(inputs["visitor_map"]).mkdir()
    (Path(inputs["visitor_map"]) / "map.csv").write_bytes(data.visitor_map)
    spec = load_segments().spec()

    counts = job.run(spark, inputs, as_of, spec, str(tmp_path / "spark"))
    got = duck_c360.run(inputs, as_of, spec, tmp_path / "duck", threads=2, memory_limit="1GB",
                        temp_dir=tmp_path / "tmp")
    assert {n: got[n] for n in duck_c360.OUTPUTS} == {n: counts[n] for n in duck_c360.OUTPUTS}
    assert duck_c360.compare(tmp_path / "spark", tmp_path / "duck", samples=3) == dict.fromkeys(duck_c360.OUTPUTS, 0)
    # the web sessions reached the outputs (so their definitions were compared, not two empty results)
    import duckdb

    segments = duckdb.sql(f"select segment_name, customer_id from '{tmp_path}/duck/segment_membership/*.parquet' "
                          "where segment_type = 'audience'").fetchall()
    assert ("Frequent Cart Abandoner", customers[0]) in segments
    channels = dict(duckdb.sql(f"select profile_id, preferred_channel from "
                               f"'{tmp_path}/duck/customer_profile/*.parquet' "
                               "where preferred_channel is not null").fetchall())
    assert channels.get(customers[0]) == "Email" and channels.get(customers[1]) == "Direct"
