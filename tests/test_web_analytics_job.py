"""Unit tests of the GA flattening job's DataFrame functions on the shared local Spark session."""

from __future__ import annotations

import json

import hypothesis
import pytest
from hypothesis import strategies as st

web = pytest.importorskip("web_analytics_job")

VISITOR_MAP = [("V1", "C1"), ("V2", "C2"), ("V2", "C9")]  # V2 mapped twice: the smallest id wins


def _session(visitor="V1", start=1763600000, hits=None, **extra):
    prod = {"productSKU": "P1", "v2ProductName": "Shoe", "v2ProductCategory": "Footwear/Running",
            "productBrand": "Acme", "productPrice": 25_500_000, "productQuantity": 1}
    hits = hits if hits is not None else [
        {"hitNumber": 1, "time": 0, "type": "PAGE", "eCommerceAction": {"action_type": "2"}, "product": [prod]},
        {"hitNumber": 2, "time": 1000, "type": "EVENT", "eCommerceAction": {"action_type": "0"},
         "eventInfo": {"eventAction": "add_to_wishlist"}, "product": [prod]},
        {"hitNumber": 3, "time": 5000, "type": "PAGE", "eCommerceAction": {"action_type": "2"}, "product": [prod]},
        {"hitNumber": 4, "time": 9000, "type": "EVENT", "eCommerceAction": {"action_type": "3"},
         "product": [{**prod, "productQuantity": 2}]},
        {"hitNumber": 5, "time": 12000, "type": "PAGE", "eCommerceAction": {"action_type": "0"}},  # no lens hit
        {"hitNumber": 6, "time": 20000, "type": "PAGE", "eCommerceAction": {"action_type": "6"},
         "product": [{**prod, "productQuantity": 2}, {**prod, "productSKU": "P2"}],
         "transaction": {"transactionId": "T1", "transactionRevenue": 76_500_000}},
    ]
    return json.dumps({"fullVisitorId": visitor, "visitId": start, "visitStartTime": start,
                       "channelGrouping": "Organic Search", "trafficSource": {"source": "google"},
                       "hits": hits, **extra})


def _lines(spark, lines):
    from pyspark.sql import functions as F

    return spark.createDataFrame([(x,) for x in lines], "value string").withColumn(web.SOURCE_FILE, F.lit("f.json"))


def _reasons(spark, lines):
    parsed = web.parse(_lines(spark, lines))
    return [r[web.REASON] for r in parsed.select(web.REASON).collect()]


def test_good_session_flattens_into_lens_activities(spark):
    parsed = web.parse(_lines(spark, [_session()]))
    vm = spark.createDataFrame(VISITOR_MAP, "fullVisitorId string, customer_id string")
    rows = web.flatten(parsed, vm.groupBy("fullVisitorId").agg({"customer_id": "min"})
                       .withColumnRenamed("min(customer_id)", "customer_id")).collect()
    by = sorted((r.activity_ts, r.event_action, r.product_sku) for r in rows)
    assert [(a, p) for _, a, p in by] == [
        ("product_view", "P1"), ("add_to_favourite", "P1"), ("product_view", "P1"), ("add_to_cart", "P1"),
        ("order_placed", "P1"), ("order_placed", "P2"),
    ]
    views = sorted((r for r in rows if r.event_action == "product_view"), key=lambda r: r.activity_ts)
    assert [v.occurence for v in views] == [1, 2]
    assert views[0].activity_repeated_at is None and views[1].activity_repeated_at == views[0].activity_ts
    cart = next(r for r in rows if r.event_action == "add_to_cart")
    assert (cart.product_price, cart.quantity, cart.order_value) == (25.5, 2, 51.0)
    assert (cart.category_name, cart.subcategory_name, cart.brand_name) == ("Footwear", "Running", "Acme")
    order = [r for r in rows if r.event_action == "order_placed"]
    assert {r.transaction_id for r in order} == {"T1"} and cart.transaction_id is None
    assert {r.entity_id for r in rows} == {"C1"}
    assert {r.session_id for r in rows} == {"V1-1763600000"}
    assert len({r.activity_uuid for r in rows}) == 6
    assert str(views[0].visit_start_ts) == "2025-11-20 00:53:20" and views[0].activity_year == 2025


def test_activity_ids_are_stable_across_runs(spark):
    def ids():
        vm = spark.createDataFrame(VISITOR_MAP[:1], "fullVisitorId string, customer_id string")
        return sorted(r.activity_uuid for r in web.flatten(web.parse(_lines(spark, [_session()])), vm).collect())

    first, second = ids(), ids()
    assert first == second and len(set(first)) == 6


def test_anonymous_visitor_has_no_entity(spark):
    parsed = web.parse(_lines(spark, [_session(visitor="A123")]))
    rows = web.flatten(parsed, spark.createDataFrame(VISITOR_MAP[:1], "fullVisitorId string, customer_id string"))
    assert {r.entity_id for r in rows.collect()} == {None}


@pytest.mark.parametrize(("line", "reason"), [
    (_session()[:40], "malformed JSON"),
    ("not json at all", "malformed JSON"),
    (_session(hits={"hitNumber": 1}), "JSON does not match the GA export shape"),
    (_session(start="yesterday"), "visitStartTime: 'yesterday' is not a valid bigint"),
    (json.dumps({"visitId": 1, "visitStartTime": 1}), "fullVisitorId: required value is missing"),
    (_session(hits=[{"hitNumber": 1, "time": "soon", "eCommerceAction": {"action_type": "2"}, "product": []}]),
     "hits.time: 'soon' is not a valid bigint"),
    (_session(hits=[{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "2"},
                     "product": [{"productSKU": "P", "productPrice": "12,50", "productQuantity": 1}]}]),
     "hits.product.productPrice: '12,50' is not a valid bigint"),
    (_session(hits=[{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "3"},
                     "product": [{"productSKU": "P", "productPrice": 1, "productQuantity": "two"}]}]),
     "hits.product.productQuantity: 'two' is not a valid int"),
])
def test_bad_lines_are_quarantined_with_a_reason(spark, line, reason):
    assert _reasons(spark, [line]) == [reason]


def test_good_lines_have_no_reason(spark):
    assert _reasons(spark, [_session(), _session(visitor="V2", hits=[])]) == [None, None]


def test_run_writes_stage_quarantine_and_a_reconciling_manifest(spark, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_text("\n".join([_session(), _session()[:50], "", _session(visitor="V2")]) + "\n")
    (tmp_path / "vm.csv").write_text("fullVisitorId,customer_id\n" + "\n".join(f"{v},{c}" for v, c in VISITOR_MAP))
    stage, quarantine = tmp_path / "stage", tmp_path / "quarantine"
    manifest = web.run(spark, str(raw), str(tmp_path / "vm.csv"), str(stage), str(quarantine))
    assert manifest == {"lines": 3, "parsed_lines": 2, "quarantined_lines": 1, "activities": 12}
    assert spark.read.parquet(str(stage)).count() == 12
    q = spark.read.parquet(str(quarantine)).collect()
    assert [(r[web.REASON], r[web.SOURCE_FILE]) for r in q] == [("malformed JSON", "a.json")]
    assert json.loads(spark.read.text(f"{stage}/{web.MANIFEST}").first().value) == manifest
    entity = {r.entity_id for r in spark.read.parquet(str(stage)).collect()}
    assert entity == {"C1", "C2"}


def test_job_columns_match_the_registry(spark):
    from c360.registry import load_registry

    produced = web.flatten(spark.createDataFrame([], f"s {web.SESSION}"),
                           spark.createDataFrame([], "fullVisitorId string, customer_id string")).columns
    assert produced == load_registry()["web_analytics"].column_names


# ---- NUL and invalid UTF-8 ---------------------------------------------------------------------------


def _product_line(name: str, ensure_ascii: bool = True, **session) -> str:
    """A good session whose one product-view hit has a product named ``name``; JSON as json.dumps writes it
    (NUL and other control characters as escapes; non-ASCII escaped or as UTF-8, by ``ensure_ascii``)."""
    hits = [{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "2"},
             "product": [{"productSKU": "P1", "v2ProductName": name, "productPrice": 1_000_000,
                          "productQuantity": 1}]}]
    return json.dumps(json.loads(_session(hits=hits, **session)), ensure_ascii=ensure_ascii)


def _file_reasons(spark, path, lines: list[bytes]) -> list[str | None]:
    """Reasons of the lines as the job reads them: bytes in a file, read by ``read_lines``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    parsed = web.parse(web.read_lines(spark, str(path)))
    return [r[web.REASON] for r in parsed.select(web.REASON).collect()]


NUL_REASON = "hits[0].product[0].v2ProductName: contains NUL (U+0000)"


def test_blank_lines_are_the_ones_the_extract_does_not_count(spark, tmp_path):
    """raw lines (counted by the extract task: bytes.strip()) = the lines the job reads, or the load fails."""
    lines = [b" ", b"\t", b" \x0b\x0c\t ", b"\x00", b"\x1c", _session().encode()]
    counted = sum(1 for line in b"\n".join(lines).splitlines() if line.strip())  # as steps.extract_landing
    assert _file_reasons(spark, tmp_path / "raw" / "a.json", lines) == ["malformed JSON", "malformed JSON", None]
    assert counted == 3


@pytest.mark.parametrize(("line", "reason"), [
    (_product_line("Sho\x00e"), NUL_REASON),                               # json.dumps writes the escape \u0000
    (_product_line("Shoe", channelGrouping="\x00"),
     "channelGrouping: contains NUL (U+0000)"),
    (_product_line("\x00", channelGrouping="a\x00", trafficSource={"source": "\x00"}),
     "channelGrouping: contains NUL (U+0000) (and 2 more fields)"),
    (_session(hits=[{"hitNumber": 1, "time": 0, "eCommerceAction": {"action_type": "2"}},
                    {"hitNumber": 2, "time": 0, "transaction": {"transactionId": "T\x00"}}]),
     "hits[1].transaction.transactionId: contains NUL (U+0000)"),
    (_product_line("Shoe", visitStartTime="1\x00"), "visitStartTime: contains NUL (U+0000)"),  # not the type error
    (_product_line("\\u0000"), None),                                      # an escaped backslash, then "u0000"
    (_product_line("Shoe", unread={"field": "\x00"}), None),               # a field the job does not read
])
def test_a_nul_in_a_value_quarantines_the_line_naming_the_field(spark, line, reason):
    assert _reasons(spark, [line]) == [reason]


def test_a_raw_nul_byte_in_a_value_is_found_as_a_nul(spark, tmp_path):
    raw = _product_line("Sho\x00e").replace("\\u0000", "\x00").encode()
    assert b"\x00" in raw and b"\\u0000" not in raw
    outside = _product_line("Shoe").encode().replace(b', "hits"', b',\x00 "hits"')  # between tokens: no field
    assert _file_reasons(spark, tmp_path / "raw" / "a.json", [raw, outside]) == [NUL_REASON, "malformed JSON"]


@pytest.mark.parametrize("bad", [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbf", b"\xef", b"\xf0\x9f\x98"])
def test_invalid_utf8_quarantines_the_line_with_the_first_bad_byte(spark, tmp_path, bad):
    line = _product_line("Sh@@e").encode().replace(b"@@", bad)
    offset = line.index(bad)
    assert _file_reasons(spark, tmp_path / "raw" / "a.json", [line]) == [
        f"line is not valid UTF-8 (byte 0x{bad[0]:02x} at offset {offset})"]


def test_a_replacement_character_in_the_source_is_published_as_is(spark, tmp_path):
    """U+FFFD written by the source (as UTF-8 bytes or as the escape) is valid text, unlike bad bytes."""
    lines = [_product_line("Sho\ufffde", visitor="V1", ensure_ascii=False).encode(),  # bytes EF BF BD
             _product_line("Sho\ufffde", visitor="V2").encode()]                       # escape \ufffd
    assert "\ufffd".encode() in lines[0] and b"\\ufffd" in lines[1]
    raw = tmp_path / "raw" / "a.json"
    assert _file_reasons(spark, raw, lines) == [None, None]
    vm = spark.createDataFrame([], "fullVisitorId string, customer_id string")
    rows = web.flatten(web.parse(web.read_lines(spark, str(raw))), vm).collect()
    assert sorted((r.session_id[:2], r.product_name) for r in rows) == [("V1", "Sho\ufffde"), ("V2", "Sho\ufffde")]


def test_run_quarantines_nul_and_bad_bytes_and_publishes_the_rest(spark, tmp_path):
    import pyarrow.parquet as pq

    good = _session(visitor="V2").encode()
    nul, bad = _product_line("Sho\x00e").encode(), _product_line("Sh@@e").encode().replace(b"@@", b"\xff\xfe")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_bytes(b"\n".join([good, nul, bad]) + b"\n")
    (tmp_path / "vm.csv").write_text("fullVisitorId,customer_id\n" + "\n".join(f"{v},{c}" for v, c in VISITOR_MAP))
    stage, quarantine = tmp_path / "stage", tmp_path / "quarantine"
    manifest = web.run(spark, str(raw), str(tmp_path / "vm.csv"), str(stage), str(quarantine))
    assert manifest == {"lines": 3, "parsed_lines": 1, "quarantined_lines": 2, "activities": 6}
    # read outside Spark, as `make quarantine` does: every value is a valid UTF-8 string
    rows = pq.read_table(quarantine).to_pylist()
    by_reason = {r[web.REASON]: r["value"] for r in rows}
    assert by_reason[NUL_REASON] == nul.decode()
    utf8 = f"line is not valid UTF-8 (byte 0xff at offset {bad.index(bytes([0xFF]))})"
    assert by_reason[utf8] == bad.decode(errors="replace") and "Sh\ufffd\ufffde" in by_reason[utf8]
    assert {r.session_id for r in spark.read.parquet(str(stage)).collect()} == {"V2-1763600000"}


# ---- properties (hypothesis: derandomized, a small budget; one Spark job per example) --------------------

# pieces of a line: valid text, bytes that are not UTF-8 (or only nearly), and random bytes
_PIECES = st.one_of(
    st.text(max_size=6).map(str.encode),
    st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc2", b"\xe0\x80\x80", b"\xe0\xa0",
                     b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xef", b"\xef\xbf", b"\xef\xbf\xbd", b"\xef\xbf\xbf",
                     b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5"]),
    st.binary(max_size=4),
)
_LINE_BODIES = st.lists(st.lists(_PIECES, max_size=8).map(b"".join), min_size=1, max_size=12)


@hypothesis.settings(max_examples=8, derandomize=True, deadline=None, database=None)
@hypothesis.given(bodies=_LINE_BODIES)
def test_property_invalid_utf8_is_reported_where_python_finds_it(spark, tmp_path_factory, bodies):
    lines = [b'{"v2ProductName": "' + b.replace(b"\n", b" ").replace(b"\r", b" ") + b'"}' for b in bodies]
    reasons = _file_reasons(spark, tmp_path_factory.mktemp("raw") / "a.json", lines)
    for line, reason in zip(lines, reasons, strict=True):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            assert reason == f"line is not valid UTF-8 (byte 0x{line[e.start]:02x} at offset {e.start})", line
        else:
            assert not (reason or "").startswith("line is not valid UTF-8"), line


@hypothesis.settings(max_examples=6, derandomize=True, deadline=None, database=None)
@hypothesis.given(names=st.lists(st.text(max_size=12), min_size=1, max_size=8), ascii_only=st.booleans())
def test_property_a_name_is_published_exactly_or_quarantined_for_its_nul(spark, names, ascii_only):
    lines = [_product_line(n, visitor=f"V{i}", ensure_ascii=ascii_only) for i, n in enumerate(names)]
    parsed = web.parse(_lines(spark, lines)).cache()
    assert [r[web.REASON] for r in parsed.select(web.REASON).collect()] == [
        NUL_REASON if "\x00" in n else None for n in names]
    vm = spark.createDataFrame([], "fullVisitorId string, customer_id string")
    published = {r.session_id.split("-")[0]: r.product_name for r in web.flatten(parsed, vm).collect()}
    assert published == {f"V{i}": n for i, n in enumerate(names) if "\x00" not in n}
    parsed.unpersist()
