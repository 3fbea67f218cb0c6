"""Spark job: Google Analytics export (nested JSON, one session per line) → seed 002 lens activities.

Each session line is either flattened or quarantined whole, with a reason; nothing is dropped:

* a line whose bytes are not valid UTF-8 → quarantine ``line is not valid UTF-8 (byte 0xff at offset 17)``
  (the first bad byte, 0-based offset in the line). Spark would otherwise decode it with U+FFFD in place of
  the bad bytes and publish that. The quarantined ``value`` holds the line with U+FFFD in their place (a
  Parquet string must be UTF-8); the raw partition keeps the original bytes. A U+FFFD that the source itself
  holds (the bytes EF BF BD or the escape ``\\ufffd``) is valid text and is published as is;
* a value the job reads (any field of ``SESSION``) that holds NUL (U+0000: the JSON escape ``\\u0000``, or a
  raw 0x00 byte inside a string) → quarantine ``hits[3].product[0].v2ProductName: contains NUL (U+0000)``
  (0-based positions in the line; the first such field, and how many more). PostgreSQL text cannot hold NUL:
  without this the load of the whole hour fails. Fields the job does not read are not checked;
* a line that is not JSON (e.g. cut short) → quarantine ``malformed JSON``;
* JSON that does not fit the GA export shape (``hits`` not a list, …) → quarantine;
* a required session field missing, or a value of the wrong type anywhere in the session (visit start,
  hit time, product price or quantity) → quarantine, the reason names the field and the value.

The first of these that applies is the line's reason (the type checks are all listed, joined by ``; ``).

A good line yields one activity per product of each lens hit: ``product_view`` (eCommerce action 2),
``add_to_favourite`` (event action ``add_to_wishlist``), ``add_to_cart`` (action 3) and ``order_placed``
(action 6). ``entity_id`` is the customer behind the visitor (visitor map; NULL for anonymous visitors).
``occurence`` numbers repeats of the same action on the same product within a session and
``activity_repeated_at`` is the time of the previous one. ``activity_uuid`` is derived from session, hit and
product position, so a rerun produces the same ids.

Beside the stage output the job writes ``_manifest`` (lines read, parsed, quarantined; activities), which
the load task reconciles: raw lines = parsed + quarantined, and stage rows = activities.
"""

from __future__ import annotations

import base64
import json
import sys

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

import jobkit

REASON = "_reject_reason"
SOURCE_FILE = "_source_file"
CORRUPT = "_corrupt_record"
MANIFEST = "_manifest"

# Every leaf is read as a string: types are checked below, so a bad value quarantines with its text.
PRODUCT = ("struct<productSKU:string,v2ProductName:string,v2ProductCategory:string,productBrand:string,"
           "productPrice:string,productQuantity:string>")
HIT = (f"struct<hitNumber:string,time:string,type:string,eCommerceAction:struct<action_type:string>,"
       f"eventInfo:struct<eventCategory:string,eventAction:string>,product:array<{PRODUCT}>,"
       f"transaction:struct<transactionId:string,transactionRevenue:string>>")
SESSION = (f"struct<fullVisitorId:string,visitId:string,visitStartTime:string,channelGrouping:string,"
           f"trafficSource:struct<source:string,medium:string>,hits:array<{HIT}>,{CORRUPT}:string>")

NUL = "\x00"

# lens entity by GA hit: eCommerce action type, or the event action for favourites
EVENT_ACTIONS = {"2": "product_view", "3": "add_to_cart", "6": "order_placed"}
FAVOURITE_EVENT = "add_to_wishlist"


# what counts as blank: the ASCII whitespace Python's bytes.strip() removes, as the extract task counts lines
BLANK = " \t\x0b\x0c"


def read_lines(spark: SparkSession, uri: str) -> DataFrame:
    """Non-blank lines of the raw partition with the file each came from."""
    df = spark.read.text(uri).select("value", F.col("_metadata.file_name").alias(SOURCE_FILE))
    return df.filter(F.trim("value", F.lit(BLANK)) != "")


def struct_fields(struct_type: str) -> list[tuple[str, str]]:
    """``(name, type)`` of each field of a ``struct<…>`` type string such as ``SESSION``."""
    if not (struct_type.startswith("struct<") and struct_type.endswith(">")):
        raise ValueError(f"not a struct type: {struct_type!r}")
    fields, depth, start, body = [], 0, 0, struct_type[len("struct<"):-1] + ","
    for i, ch in enumerate(body):
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            name, _, type_ = body[start:i].partition(":")
            fields.append((name, type_))
            start = i + 1
    return fields


def nul_fields(value: Column, type_: str, path: Column | None = None) -> Column:
    """The paths (``hits[3].product[0].v2ProductName``, 0-based positions) of the strings under ``value`` (of
    type ``type_``) that hold NUL, as an array with a NULL entry for each string that does not."""
    if type_.startswith("struct<"):
        return F.concat(*[
            nul_fields(value[name], t, F.lit(name) if path is None else F.concat(path, F.lit(f".{name}")))
            for name, t in struct_fields(type_) if name != CORRUPT
        ])
    if type_.startswith("array<"):
        return F.flatten(F.transform(F.coalesce(value, F.array()), lambda v, i: nul_fields(
            v, type_[len("array<"):-1], F.concat(path, F.lit("["), i.cast("string"), F.lit("]")))))
    return F.array(F.when(F.instr(value, NUL) > 0, path))


def nul_reason(session: Column) -> Column:
    """``<first field>: contains NUL (U+0000)`` (and how many more fields do), or NULL."""
    paths = F.filter(nul_fields(session, SESSION), lambda p: p.isNotNull())
    more = F.size(paths) - 1
    return F.concat(
        F.try_element_at(paths, F.lit(1)), F.lit(": contains NUL (U+0000)"),
        F.when(more == 1, F.lit(" (and 1 more field)"))
        .when(more > 1, F.format_string(" (and %d more fields)", more)).otherwise(F.lit("")),
    )


def utf8_reason(value: Column) -> Column:
    """``line is not valid UTF-8 (byte 0x.. at offset N)`` for a line whose bytes are not valid UTF-8.

    Spark keeps a text line's bytes as read, so the first bad byte is where the line and its repaired copy
    (``make_valid_utf8``: U+FFFD, EF BF BD, for each bad sequence) first differ, moved back over the EF or
    EF BF a bad sequence may share with that replacement. Evaluate only for invalid lines (O(line length)).
    """
    raw, fixed = value.cast("binary"), F.make_valid_utf8(value).cast("binary")
    one = F.lit(1)
    differ = F.filter(F.sequence(one, F.octet_length(raw)), lambda i: raw.substr(i, one) != fixed.substr(i, one))
    first = F.coalesce(F.try_element_at(differ, one), F.octet_length(raw) + 1)  # 1-based
    back = (F.when((first > 2) & (F.hex(raw.substr(first - 2, F.lit(2))) == "EFBF"), 2)
            .when((first > 1) & (F.hex(raw.substr(first - 1, one)) == "EF"), 1).otherwise(0))
    offset = first - 1 - back
    return F.format_string("line is not valid UTF-8 (byte 0x%s at offset %d)",
                           F.lower(F.hex(raw.substr(offset + 1, one))), offset)


def parse(lines: DataFrame) -> DataFrame:
    """``s`` = the parsed session (NULL fields where absent) and ``_reject_reason`` (NULL for a good line)."""
    # raw control characters are accepted here only so that a raw 0x00 inside a string reaches the NUL check
    # with its field; try_parse_json (strict) still makes any such line "malformed JSON"
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, "allowUnquotedControlChars": "true"}
    parsed = lines.select(
        "*",
        F.from_json("value", SESSION, options).alias("s"),
        F.try_parse_json("value").isNull().alias("_not_json"),
    )
    s, value = F.col("s"), F.col("value")
    hits = F.coalesce(s["hits"], F.array())
    products = F.flatten(F.transform(hits, lambda h: F.coalesce(h["product"], F.array())))

    def first_bad(values: Column, to: str) -> Column:
        bad = F.filter(values, lambda v: v.isNotNull() & v.try_cast(to).isNull())
        return F.try_element_at(bad, F.lit(1))

    checks: list[tuple[Column, Column]] = [
        (s["fullVisitorId"].isNull(), F.lit("fullVisitorId: required value is missing")),
        (s["visitId"].isNull(), F.lit("visitId: required value is missing")),
        (s["visitStartTime"].isNull(), F.lit("visitStartTime: required value is missing")),
    ]
    for field, values, to in (
        ("visitStartTime", F.array(s["visitStartTime"]), "bigint"),
        ("hits.time", F.transform(hits, lambda h: h["time"]), "bigint"),
        ("hits.hitNumber", F.transform(hits, lambda h: h["hitNumber"]), "int"),
        ("hits.product.productPrice", F.transform(products, lambda p: p["productPrice"]), "bigint"),
        ("hits.product.productQuantity", F.transform(products, lambda p: p["productQuantity"]), "int"),
    ):
        bad = first_bad(values, to)
        checks.append((bad.isNotNull(), F.format_string(f"{field}: '%s' is not a valid {to}", bad)))
    reasons = F.concat_ws("; ", *[F.when(cond, msg) for cond, msg in checks])
    may_hold_nul = value.contains("\\u0000") | value.contains(NUL)  # cheap: the field walk runs on these only
    reason = F.coalesce(  # evaluated left to right: the first that applies
        F.when(~F.is_valid_utf8(value), utf8_reason(value)),
        F.when(may_hold_nul, nul_reason(s)),
        F.when(F.col("_not_json"), F.lit("malformed JSON"))
        .when(s[CORRUPT].isNotNull(), F.lit("JSON does not match the GA export shape"))
        .when(reasons != "", reasons),
    )
    return parsed.select("value", SOURCE_FILE, "s", reason.alias(REASON))


def flatten(sessions: DataFrame, visitor_map: DataFrame) -> DataFrame:
    """Good sessions → one row per lens activity, in the registry's column order."""
    s = sessions.select(
        F.col("s.fullVisitorId").alias("visitor"),
        F.concat_ws("-", "s.fullVisitorId", "s.visitId").alias("session_id"),
        F.timestamp_seconds(F.col("s.visitStartTime").cast("bigint")).cast("timestamp_ntz").alias("visit_start_ts"),
        F.col("s.channelGrouping").alias("traffic_channel"),
        F.col("s.trafficSource.source").alias("traffic_source"),
        F.explode(F.coalesce("s.hits", F.array())).alias("h"),
    )
    action_type = F.col("h.eCommerceAction.action_type")
    event_action = F.when(F.col("h.eventInfo.eventAction") == FAVOURITE_EVENT, F.lit("add_to_favourite"))
    for code, name in EVENT_ACTIONS.items():
        event_action = event_action.when(action_type == code, F.lit(name))
    hits = s.select("*", event_action.alias("event_action")).filter(F.col("event_action").isNotNull())
    items = hits.select("*", F.posexplode(F.coalesce("h.product", F.array())).alias("pos", "p"))
    category = F.split("p.v2ProductCategory", "/", 2)
    price = F.col("p.productPrice").cast("bigint") / F.lit(1_000_000.0)
    quantity = F.col("p.productQuantity").cast("int")
    activity_ts = (F.col("visit_start_ts") + F.make_dt_interval(
        secs=F.col("h.time").cast("bigint") / F.lit(1000.0))).alias("activity_ts")
    uuid_hex = F.sha2(F.concat_ws("|", "session_id", "h.hitNumber", "pos"), 256)
    activity_uuid = F.concat_ws("-", *[F.substring(uuid_hex, start, n) for start, n in
                                       ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))])
    rows = items.select(
        activity_uuid.alias("activity_uuid"),
        "session_id",
        "visit_start_ts",
        "visitor",
        activity_ts,
        F.col("p.productSKU").alias("product_sku"),
        F.col("p.v2ProductName").alias("product_name"),
        category.getItem(0).alias("category_name"),
        F.try_element_at(category, F.lit(2)).alias("subcategory_name"),
        F.col("p.productBrand").alias("brand_name"),
        price.alias("product_price"),
        quantity.alias("quantity"),
        F.when(F.col("event_action").isin("add_to_cart", "order_placed"), F.round(price * quantity, 2))
        .alias("order_value"),
        "event_action",
        "traffic_channel",
        "traffic_source",
        F.when(F.col("event_action") == "order_placed", F.col("h.transaction.transactionId"))
        .alias("transaction_id"),
    )
    repeat = Window.partitionBy("session_id", "event_action", "product_sku").orderBy("activity_ts", "activity_uuid")
    vmap = visitor_map.select(F.col("fullVisitorId").alias("visitor"), F.col("customer_id").alias("entity_id"))
    out = rows.join(vmap, "visitor", "left").select(
        "*",
        F.year("activity_ts").alias("activity_year"),
        F.month("activity_ts").alias("activity_month"),
        F.row_number().over(repeat).alias("occurence"),
        F.lag("activity_ts").over(repeat).alias("activity_repeated_at"),
    )
    return out.select(
        "activity_uuid", "session_id", "visit_start_ts", "entity_id", "activity_ts", "activity_year",
        "activity_month", "product_sku", "product_name", "category_name", "subcategory_name", "brand_name",
        "product_price", "quantity", "order_value", "event_action", "traffic_channel", "traffic_source",
        "occurence", "activity_repeated_at", "transaction_id",
    )


def read_visitor_map(spark: SparkSession, uri: str) -> DataFrame:
    """fullVisitorId → customer_id. A visitor mapped to several customers keeps the smallest id (stable)."""
    vm = spark.read.csv(uri, header=True, schema="fullVisitorId string, customer_id string")
    return vm.filter(F.col("fullVisitorId").isNotNull()).groupBy("fullVisitorId").agg(
        F.min("customer_id").alias("customer_id")
    )


def run(spark: SparkSession, raw_uri: str, visitor_map_uri: str, stage_uri: str, quarantine_uri: str) -> dict:
    parsed = parse(read_lines(spark, raw_uri)).cache()
    stage = None
    try:
        good = parsed.filter(F.col(REASON).isNull())
        stage = flatten(good, read_visitor_map(spark, visitor_map_uri)).cache()
        stage.write.mode("overwrite").parquet(stage_uri)
        # a Parquet string must be UTF-8: bad bytes are kept as U+FFFD (the raw partition has the originals)
        parsed.filter(F.col(REASON).isNotNull()) \
            .select(F.make_valid_utf8("value").alias("value"), REASON, SOURCE_FILE) \
            .write.mode("overwrite").parquet(quarantine_uri)
        counts = parsed.groupBy().agg(
            F.count("*").alias("lines"),
            F.count_if(F.col(REASON).isNull()).alias("parsed_lines"),
            F.count_if(F.col(REASON).isNotNull()).alias("quarantined_lines"),
        ).first().asDict()
        manifest = {**{k: int(v or 0) for k, v in counts.items()}, "activities": stage.count()}
        # written by Spark, so it lands wherever the stage output does (local, S3, HDFS)
        spark.createDataFrame([(json.dumps(manifest),)], "value string").coalesce(1) \
            .write.mode("overwrite").text(f"{stage_uri}/{MANIFEST}")
        return manifest
    finally:
        # a Spark Connect server's cache outlives the session: release what this run cached
        for df in (stage, parsed):
            if df is not None:
                df.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = jobkit.argument_parser(__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spec", help="base64 JSON from the registry (columns; the output order is fixed here)")
    parser.add_argument("--raw", required=True)
    parser.add_argument("--lookup", required=True, help="visitor map CSV: fullVisitorId,customer_id")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--quarantine", required=True)
    args = parser.parse_args(argv)
    with jobkit.job_session(f"c360_stage_{args.dataset}", args) as spark:
        if args.spec:  # the registry and this job must agree on the columns
            declared = [c["name"] for c in json.loads(base64.b64decode(args.spec))["columns"]]
            produced = flatten(spark.createDataFrame([], f"s {SESSION}"),
                               spark.createDataFrame([], "fullVisitorId string, customer_id string")).columns
            if declared != produced:
                raise SystemExit(f"registry columns {declared} differ from the job's output {produced}")
        manifest = run(spark, args.raw, args.lookup, args.stage, args.quarantine)
    print(json.dumps({"dataset": args.dataset, **manifest}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
