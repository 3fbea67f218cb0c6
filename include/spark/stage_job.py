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


def cast_and_validate(df: DataFrame, columns: list[dict]) -> DataFrame:
    """Typed columns plus ``_reject_reason`` (NULL for a good row); raw strings kept as ``_raw_<name>``.

    Built as flat selects (not a withColumn loop): one projection per stage keeps the plan small.
    """
    raw = df.select(*[
        # text is kept exactly; a blank value of a typed column is a missing one
        (F.col(f"`{c['name']}`") if c["type"] == "string"
         else F.when(_blank(F.col(f"`{c['name']}`")), None).otherwise(F.col(f"`{c['name']}`")))
        .alias(f"_raw_{c['name']}") for c in columns], SOURCE_FILE)
    typed = []
    for c in columns:
        name, spark_type = c["name"], c["type"]
        r = F.col(f"_raw_{name}")
        typed.append((r if spark_type == "string" else r.try_cast(spark_type)).alias(name))
    out = raw.select("*", *typed)
    reasons: list[Column] = []
    for c in columns:
        name = c["name"]
        r = F.col(f"_raw_{name}")
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


def split(df: DataFrame, columns: list[dict], business_key: list[str], version_column: str) -> tuple[DataFrame, DataFrame]:
    """raw strings → (stage rows with typed columns, quarantine rows with raw values and a reason)."""
    names = [c["name"] for c in columns]
    checked = cast_and_validate(df, columns)
    invalid = checked.filter(F.col(REASON).isNotNull())
    valid = deduplicate(checked.filter(F.col(REASON).isNull()), business_key, version_column, names)
    stage = valid.filter(F.col(REASON).isNull()).select(*names)
    superseded = valid.filter(F.col(REASON).isNotNull())
    raw_cols = [F.col(f"_raw_{n}").alias(n) for n in names]
    quarantine = reduce(
        DataFrame.unionByName,
        [q.select(*raw_cols, REASON, SOURCE_FILE) for q in (invalid, superseded)],
    )
    return stage, quarantine


def run(spark: SparkSession, spec: dict, raw_uri: str, stage_uri: str, quarantine_uri: str) -> dict[str, int]:
    raw = read_raw(spark, raw_uri, spec["columns"]).cache()
    try:
        stage, quarantine = split(raw, spec["columns"], spec["business_key"], spec["version_column"])
        stage.write.mode("overwrite").parquet(stage_uri)
        quarantine.write.mode("overwrite").parquet(quarantine_uri)
        return {"raw": raw.count()}
    finally:
        # a Spark Connect server's cache outlives the session: a rerun reading new files at the same path
        # would otherwise be served this run's rows
        raw.unpersist()


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
