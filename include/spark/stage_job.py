"""Spark job: raw (the source's text, as extracted) → stage (typed, deduplicated Parquet) + quarantine.

One job serves every tabular dataset; what differs (columns, types, business key, version column) comes in
``--spec`` from the dataset registry. Every raw row ends up in exactly one of stage or quarantine, so
``raw = stage + quarantine`` (the load task checks it):

* a value that does not parse as its declared type → quarantine, reason names the column and the value;
* a required column that is empty → quarantine;
* several rows with one business key → the latest by the version column is staged, the others are
  quarantined as superseded (ties broken by the row's full content, so reruns pick the same row).

Raw is Parquet whose columns are the source values as text (``c360.pgcsv`` reads PostgreSQL's CSV
exactly), so a text value is staged exactly as the source holds it: line breaks, quotes, backslashes, leading
and trailing spaces and the empty string included. A value of a non-text column that is blank (empty or
only spaces) is missing (NULL); a required column that is NULL or blank is missing.
"""

from __future__ import annotations

import base64
import json
import sys
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

import jobkit

REASON = "_reject_reason"
SOURCE_FILE = "_source_file"


def read_raw(spark: SparkSession, uri: str, columns: list[dict]) -> DataFrame:
    """Read the extracted rows (Parquet, every column as the source's text) plus the file each came from."""
    df = spark.read.parquet(uri)
    return df.select(*[F.col(f"`{c['name']}`").cast("string") for c in columns],
                     F.col("_metadata.file_name").alias(SOURCE_FILE))


def _blank(c: Column) -> Column:
    return F.trim(c) == ""


def raw_name(c: dict) -> str:
    """The column holding ``c``'s source text: a text column is its own (staged exactly as the source holds it)."""
    return c["name"] if c["type"] == "string" else f"_raw_{c['name']}"


def cast_and_validate(df: DataFrame, columns: list[dict]) -> DataFrame:
    """Typed columns plus ``_reject_reason`` (NULL for a good row); the source text of a non-text column is
    kept as ``_raw_<name>`` (a text column is its own: one copy through the shuffle, not two).

    Built as flat selects (not a withColumn loop): one projection per stage keeps the plan small.
    """
    # a blank value of a typed column is a missing one
    raw = df.select(*[
        F.col(f"`{c['name']}`") if c["type"] == "string"
        else F.when(_blank(F.col(f"`{c['name']}`")), None).otherwise(F.col(f"`{c['name']}`")).alias(raw_name(c))
        for c in columns], SOURCE_FILE)
    typed = [F.col(raw_name(c)).try_cast(c["type"]).alias(c["name"]) for c in columns if c["type"] != "string"]
    out = raw.select("*", *typed)
    reasons: list[Column] = []
    for c in columns:
        name = c["name"]
        r = F.col(f"`{raw_name(c)}`")
        if c["type"] != "string":
            reasons.append(F.when(
                r.isNotNull() & F.col(name).isNull(),
                F.format_string(f"{name}: '%s' is not a valid {c['type']}", r),
            ))
        if not c.get("nullable", True):
            reasons.append(F.when(r.isNull() | _blank(r), F.lit(f"{name}: required value is missing")))
    reason = F.concat_ws("; ", *reasons) if reasons else F.lit("")
    return out.select("*", F.when(reason == "", None).otherwise(reason).alias(REASON))


def deduplicate(df: DataFrame, business_key: list[str], version_column: str, value_columns: list[str]) -> DataFrame:
    """Mark all but the latest version of each business key as superseded (in ``_reject_reason``)."""
    tie_break = [F.col(c).desc_nulls_last() for c in value_columns if c != version_column]
    window = Window.partitionBy(*business_key).orderBy(F.col(version_column).desc_nulls_last(), *tie_break)
    key_text = F.concat_ws(", ", *[F.format_string(f"{k}=%s", F.col(k)) for k in business_key])
    ranked = df.withColumn("_rank", F.row_number().over(window))
    return ranked.withColumn(
        REASON,
        F.when(
            F.col("_rank") > 1,
            F.concat(F.lit("superseded: a newer version of "), key_text, F.lit(" is in the same interval")),
        ),
    ).drop("_rank")


# Up to this many business keys with more than one valid row, only those keys' rows are ranked (the keys are
# broadcast); past it every valid row is (one shuffle of all of them).
BROADCAST_KEYS = 5_000_000


def split(df: DataFrame, columns: list[dict], business_key: list[str], version_column: str,
          repeated_keys: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """raw strings → (stage rows with typed columns, quarantine rows with raw values and a reason).

    ``repeated_keys`` (optional): the business keys that more than one valid row holds (:func:`repeated`);
    given, only their rows are ranked, the others are the latest version of their key by definition.
    """
    names = [c["name"] for c in columns]
    checked = cast_and_validate(df, columns)
    invalid = checked.filter(F.col(REASON).isNotNull())
    valid = checked.filter(F.col(REASON).isNull())
    if repeated_keys is None:
        ranked = deduplicate(valid, business_key, version_column, names)
        stage = ranked.filter(F.col(REASON).isNull()).select(*names)
    else:
        on = reduce(lambda a, b: a & b, [valid[k].eqNullSafe(repeated_keys[k]) for k in business_key])
        keys = F.broadcast(repeated_keys)
        ranked = deduplicate(valid.join(keys, on, "left_semi"), business_key, version_column, names)
        stage = valid.join(keys, on, "left_anti").select(*names).unionByName(
            ranked.filter(F.col(REASON).isNull()).select(*names))
    superseded = ranked.filter(F.col(REASON).isNotNull())
    raw_cols = [F.col(f"`{raw_name(c)}`").alias(c["name"]) for c in columns]
    quarantine = reduce(
        DataFrame.unionByName,
        [q.select(*raw_cols, REASON, SOURCE_FILE) for q in (invalid, superseded)],
    )
    return stage, quarantine


def repeated(df: DataFrame, columns: list[dict], business_key: list[str]) -> DataFrame:
    """The business keys more than one valid row of ``df`` holds."""
    valid = cast_and_validate(df, columns).filter(F.col(REASON).isNull())
    return valid.groupBy(*business_key).count().filter(F.col("count") > 1).select(*business_key)


def run(spark: SparkSession, spec: dict, raw_uri: str, stage_uri: str, quarantine_uri: str) -> dict[str, int]:
    """Stage and quarantine ``raw_uri``; returns the raw row count.

    The raw rows are read from Parquet by each write, not cached: building an in-memory cache of every text
    column cost more than the reads it saved (2M orders: 8 s of cache for ~5 s of reads).
    """
    raw = read_raw(spark, raw_uri, spec["columns"])
    keys = repeated(raw, spec["columns"], spec["business_key"]).cache()
    try:
        if keys.count() > BROADCAST_KEYS:
            keys.unpersist()
            keys = None
        stage, quarantine = split(raw, spec["columns"], spec["business_key"], spec["version_column"], keys)
        stage.write.mode("overwrite").parquet(stage_uri)
        quarantine.write.mode("overwrite").parquet(quarantine_uri)
        return {"raw": spark.read.parquet(raw_uri).count()}
    finally:
        # a Spark Connect server's cache outlives the session: a rerun reading new files at the same path
        # would otherwise be served this run's keys
        if keys is not None:
            keys.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = jobkit.argument_parser(__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spec", required=True, help="base64 JSON: columns, business_key, version_column")
    parser.add_argument("--raw", required=True)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--quarantine", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(base64.b64decode(args.spec))
    with jobkit.job_session(f"c360_stage_{args.dataset}", args) as spark:
        # the Airflow task this job runs for (OpenLineage parent job), so its log line links back to it
        parent = spark.conf.get("spark.openlineage.parentJobName", None)
        counts = run(spark, spec, args.raw, args.stage, args.quarantine)
    print(json.dumps({"dataset": args.dataset, **counts, "openlineage_parent_job": parent}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
