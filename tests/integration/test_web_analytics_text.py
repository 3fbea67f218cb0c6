"""GA lines holding NUL or bytes that are not UTF-8, through extract → stage → load → gate → publish (dag.test()).

One landing hour holds, among the generator's good lines, a line with the escape ``\\u0000`` in a product
name, one with a raw 0x00 byte there, one with the bytes FF FE there, and one with a U+FFFD the source wrote.
The run succeeds: the good lines (and the U+FFFD one) publish, the three others are in quarantine with their
reason, and raw lines = parsed + quarantined. A NUL that still reaches the load fails it naming the dataset
and the column.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from helpers import run_succeeds, wh

from c360 import generator, lake, pg, settings, steps, warehouse
from c360.registry import load_registry

pytestmark = pytest.mark.integration

SCALE = generator.Scale(customers=300, days=2, orders_per_day=20, sessions_per_hour=20, ga_days=1)
GA_HOUR = datetime(2026, 11, 20, 12, tzinfo=UTC)  # a landing hour the generator writes


def _named(line: str, name: str, ensure_ascii: bool = True) -> tuple[str, bytes, int]:
    """The session with its last hit's first product named ``name``: (session id, line bytes, hit index)."""
    session = json.loads(line)
    last = len(session["hits"]) - 1
    session["hits"][last]["product"][0]["v2ProductName"] = name
    return (f"{session['fullVisitorId']}-{session['visitId']}",
            json.dumps(session, separators=(",", ":"), ensure_ascii=ensure_ascii).encode(), last)


@pytest.fixture(scope="module")
def run(platform, dagbag):
    """The landing hour with the four lines put in, run once; what the tests look at."""
    generator.write_landing(generator.generate(SCALE))
    hour = lake.path(f"{settings.landing_uri()}/web_analytics/dt={GA_HOUR:%Y-%m-%d}/hr={GA_HOUR:%H}")
    (landing,) = list(hour.glob("*.json"))
    lines = [x for x in landing.read_bytes().split(b"\n") if x.strip()]
    good = []
    for x in lines:
        try:
            json.loads(x)
            good.append(x.decode())
        except ValueError:
            pass  # the generator's cut-short lines (quarantined as malformed JSON)
    assert len(good) >= 8
    escaped_nul = _named(good[1], "Trail Shoe\x00")                       # json.dumps writes \u0000
    sid, line, last = _named(good[3], "Trail\x00Shoe")
    raw_nul = (sid, line.replace(b"\\u0000", b"\x00"), last)              # a raw 0x00 byte
    sid, line, last = _named(good[5], "Trail@@Shoe")
    bad_bytes = (sid, line.replace(b"@@", b"\xff\xfe"), last)
    replacement = _named(good[7], "Trail \ufffd Shoe", ensure_ascii=False)  # U+FFFD as the bytes EF BF BD
    assert b"\x00" in raw_nul[1] and b"\\u0000" not in raw_nul[1] and "\ufffd".encode() in replacement[1]
    changed = {1: escaped_nul, 3: raw_nul, 5: bad_bytes, 7: replacement}
    lines = [changed[i][1] if i in changed else g.encode() for i, g in enumerate(good)]
    landing.write_bytes(b"\n".join(lines) + b"\n")

    ds = load_registry()["web_analytics"]
    in_hour = (GA_HOUR.replace(tzinfo=None), (GA_HOUR + timedelta(hours=1)).replace(tzinfo=None))
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # other modules may have published this hour
        warehouse.ensure_table(conn, ds)
        conn.execute("delete from c360.web_activity where visit_start_ts >= %s and visit_start_ts < %s", in_hour)
    run_succeeds(dagbag.dags[ds.dag_id], GA_HOUR + timedelta(hours=1), full_refresh=False)
    quarantine = pads.dataset(str(lake.local_path(lake.uri("quarantine", ds.name, GA_HOUR))),
                              format="parquet").to_table().to_pylist()  # every value a valid str, or this fails
    return {"ds": ds, "lines": lines, "escaped_nul": escaped_nul, "raw_nul": raw_nul, "bad_bytes": bad_bytes,
            "replacement": replacement, "quarantine": quarantine, "in_hour": in_hour,
            "manifest": steps.read_manifest(lake.uri("stage", ds.name, GA_HOUR))}


def test_nul_and_invalid_utf8_lines_are_quarantined_and_the_rest_published(run):
    reasons = {q["value"]: q["_reject_reason"] for q in run["quarantine"]}
    for key in ("escaped_nul", "raw_nul"):
        _, line, last = run[key]
        assert reasons[line.decode()] == f"hits[{last}].product[0].v2ProductName: contains NUL (U+0000)", key
    _, line, _ = run["bad_bytes"]
    utf8 = f"line is not valid UTF-8 (byte 0xff at offset {line.index(bytes([0xFF]))})"
    assert reasons[line.decode(errors="replace")] == utf8  # kept with U+FFFD in place of the two bad bytes
    # nothing else is quarantined but the generator's cut-short lines
    assert sorted(r for r in reasons.values() if r != "malformed JSON") == sorted(
        [utf8] + [f"hits[{run[k][2]}].product[0].v2ProductName: contains NUL (U+0000)"
                  for k in ("escaped_nul", "raw_nul")])

    manifest = run["manifest"]
    assert manifest["lines"] == len(run["lines"]) == manifest["parsed_lines"] + len(run["quarantine"])
    published = dict(wh("select session_id, count(*) from c360.web_activity where visit_start_ts >= %s "
                        "and visit_start_ts < %s group by session_id", run["in_hour"]))
    assert sum(published.values()) == manifest["activities"] > 0
    for key in ("escaped_nul", "raw_nul", "bad_bytes"):
        assert run[key][0] not in published, key
    sid, _, _ = run["replacement"]
    names = {r[0] for r in wh("select product_name from c360.web_activity where session_id = %s", (sid,))}
    assert "Trail \ufffd Shoe" in names  # the source's own U+FFFD is published as it is

    # what on-call sees with `make quarantine DATASET=web_analytics INTERVAL=...`
    from c360 import runs

    listing = runs.quarantine_report("web_analytics", lake.interval_key(GA_HOUR))
    assert utf8 in listing and "v2ProductName: contains NUL (U+0000)" in listing


def test_a_nul_that_reaches_the_load_fails_it_naming_dataset_and_column(run, tmp_path):
    """Were the job to let one through, PostgreSQL still refuses it; the error names where it is."""
    ds = run["ds"]
    stage = lake.local_path(lake.uri("stage", ds.name, GA_HOUR))
    table = pads.dataset(str(stage), format="parquet").to_table()
    names = table["product_name"].to_pylist()
    names[len(names) // 2] = "Trail\x00Shoe"
    key = table["activity_uuid"][len(names) // 2].as_py()
    bad_stage = tmp_path / "stage"
    bad_stage.mkdir()
    pq.write_table(table.set_column(table.schema.get_field_index("product_name"), "product_name",
                                    pa.array(names, pa.string())), bad_stage / "part-00000.parquet")
    shutil.copytree(stage / steps.MANIFEST, bad_stage / steps.MANIFEST)
    extracted = {"stage": bad_stage.as_uri(), "quarantine": lake.uri("quarantine", ds.name, GA_HOUR),
                 "raw_rows": run["manifest"]["lines"], "mode": steps.INCREMENTAL}
    interval = warehouse.Interval(GA_HOUR, GA_HOUR + timedelta(hours=1), run_id="nul-reaches-the-load")
    with pytest.raises(warehouse.UnstorableText) as failed:
        steps.load_staging(ds, interval, extracted, "web_analytics_nul_test")
    message = str(failed.value)
    assert message.startswith(f"web_analytics {lake.interval_key(GA_HOUR)}: COPY into staging."), message
    assert f"column 'product_name' (activity_uuid={key!r}) holds NUL (U+0000)" in message, message
    assert "PostgreSQL text cannot store" in message
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # the failed load's batch table stays for inspection
        conn.execute(f"drop table if exists {steps.staging_table('web_analytics_nul_test', interval)}")
