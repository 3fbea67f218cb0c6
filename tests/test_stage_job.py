"""The Spark stage job's DataFrame functions, on a small local session shared across the run."""

from __future__ import annotations

from pathlib import Path

import stage_job
from c360.registry import Column, spark_columns

# what the DAG factory passes the job for registry columns (types mapped by the registry)
COLUMNS = spark_columns([Column(name="id", type="string", nullable=False), Column(name="age", type="int"),
                         Column(name="amount", type="double"),
                         Column(name="updated_at", type="timestamp", nullable=False)])
NAMES = [c["name"] for c in COLUMNS]


def _raw(spark, rows):
    df = spark.createDataFrame(rows, schema=", ".join(f"{n} string" for n in NAMES))
    from pyspark.sql import functions as F

    return df.withColumn(stage_job.SOURCE_FILE, F.lit("part-00000.csv"))


def test_pyspark_python_matches_the_spark_jars():
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    core = [p.name for p in jars.glob("spark-core_*.jar")]
    assert core, "no spark-core jar"
    assert core[0].endswith(f"-{pyspark.__version__}.jar"), (core, pyspark.__version__)


def test_bad_values_are_quarantined_with_a_reason(spark):
    df = _raw(spark, [
        ("a", "30", "1.5", "2026-11-20 10:00:00"),
        ("b", "thirty", "2", "2026-11-20 10:00:00"),
        ("c", "40", "x1", "2026-11-20 10:00:00"),
        (None, "50", "3", "2026-11-20 10:00:00"),
        ("e", "", "  ", "not a time"),
    ])
    stage, quarantine = stage_job.split(df, COLUMNS, ["id"], "updated_at")
    assert [r.id for r in stage.collect()] == ["a"]
    reasons = {r.id: r[stage_job.REASON] for r in quarantine.collect()}
    assert reasons["b"] == "age: 'thirty' is not a valid int"
    assert reasons["c"] == "amount: 'x1' is not a valid double"
    assert reasons[None] == "id: required value is missing"
    assert "updated_at: 'not a time' is not a valid timestamp" in reasons["e"]
    assert "updated_at: required value is missing" not in reasons["e"]


def test_blank_values_of_typed_columns_are_missing(spark):
    stage, _ = stage_job.split(_raw(spark, [("a", " ", "", "2026-11-20 10:00:00")]), COLUMNS, ["id"], "updated_at")
    row = stage.collect()[0]
    assert row.age is None and row.amount is None


def test_text_is_staged_exactly_and_a_blank_required_value_is_missing(spark):
    columns = [*COLUMNS, *spark_columns([Column(name="note", type="string")])]
    texts = ["", " ", " padded ", 'O"Brien', "line\nbreak\r\n", "back\\slash\\", "tab\there"]
    rows = [(f"k{i}", "1", "1", "2026-11-20 10:00:00", t) for i, t in enumerate(texts)]
    rows += [("  ", "1", "1", "2026-11-20 10:00:00", "x"), ("", "1", "1", "2026-11-20 10:00:00", "y")]
    df = spark.createDataFrame(rows, schema=", ".join(f"{c['name']} string" for c in columns))
    from pyspark.sql import functions as F

    stage, quarantine = stage_job.split(df.withColumn(stage_job.SOURCE_FILE, F.lit("f")), columns, ["id"],
                                        "updated_at")
    assert {r.id: r.note for r in stage.collect()} == {f"k{i}": t for i, t in enumerate(texts)}
    assert sorted(r[stage_job.REASON] for r in quarantine.collect()) == ["id: required value is missing"] * 2


def test_latest_version_wins_and_older_ones_are_quarantined(spark):
    df = _raw(spark, [
        ("a", "30", "1", "2026-11-20 10:00:00"),
        ("a", "31", "1", "2026-11-20 12:00:00"),
        ("a", "29", "1", "2026-11-19 09:00:00"),
        ("b", "40", "1", "2026-11-20 10:00:00"),
    ])
    stage, quarantine = stage_job.split(df, COLUMNS, ["id"], "updated_at")
    assert sorted((r.id, r.age) for r in stage.collect()) == [("a", 31), ("b", 40)]
    q = quarantine.collect()
    assert len(q) == 2
    assert all(r[stage_job.REASON] == "superseded: a newer version of id=a is in the same interval" for r in q)


def test_ties_are_broken_the_same_way_every_time(spark):
    rows = [("a", "30", "1", "2026-11-20 10:00:00"), ("a", "31", "1", "2026-11-20 10:00:00")]
    winners = {stage_job.split(_raw(spark, r), COLUMNS, ["id"], "updated_at")[0].collect()[0].age
               for r in (rows, rows[::-1])}
    assert winners == {31}


def test_run_reconciles_raw_with_stage_plus_quarantine(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [("a", "30", "1.5", "2026-11-20 10:00:00"), ("b", "x", "2", "2026-11-20 10:00:00"),
            ("a", "29", "1.5", "2026-11-19 10:00:00"), ("c, with comma", "41", None, "2026-11-20 11:00:00")]
    pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(NAMES)}), raw / "part-00000.parquet")
    spec = {"columns": COLUMNS, "business_key": ["id"], "version_column": "updated_at"}
    counts = stage_job.run(spark, spec, raw.as_uri(), (tmp_path / "s").as_uri(), (tmp_path / "q").as_uri())
    stage = spark.read.parquet((tmp_path / "s").as_uri())
    quarantine = spark.read.parquet((tmp_path / "q").as_uri())
    assert counts["raw"] == 4
    assert stage.count() + quarantine.count() == 4
    assert sorted(r.id for r in stage.collect()) == ["a", "c, with comma"]
    assert dict(stage.dtypes)["updated_at"] == "timestamp_ntz"
    assert {r._source_file for r in quarantine.collect()} == {"part-00000.parquet"}


# ---- property: ranking only the repeated keys' rows gives what ranking every row gives --------------------

import hypothesis  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ROW = st.tuples(
    st.sampled_from(["a", "b", "c", "d", " ", "", "a\n", 'q"x', "\\"]),  # repeated, blank and hostile keys
    st.sampled_from(["30", "31", "x", "", None, "2147483648"]),
    st.sampled_from(["1.5", "-0", "1e308", "nan", "", None]),
    st.sampled_from(["2026-11-20 10:00:00", "2026-11-20 10:00:00", "2026-11-19 09:00:00", "1970-01-01 00:00:00",
                     "2099-01-01 00:00:00", "not a time", "", None]),  # ties, decades ago, future, bad
)


@hypothesis.settings(max_examples=6, derandomize=True, deadline=None, database=None)
@hypothesis.given(st.lists(_ROW, min_size=1, max_size=25))
@hypothesis.example([("a", "30", "1", "2026-11-20 10:00:00"), ("a", "31", "1", "2026-11-20 10:00:00"),
                     ("a", "x", "1", "2099-01-01 00:00:00"), ("b", "1", "", "1970-01-01 00:00:00"),
                     ("b", "2", "nan", "2026-11-19 09:00:00"), ("c", "", None, "")])
def test_ranking_repeated_keys_only_equals_ranking_every_row(spark, rows):
    df = _raw(spark, rows)

    def rows_of(stage, quarantine):
        # compared as repr: NaN, a valid double, is not equal to itself
        return sorted(repr(tuple(r)) for r in stage.collect()), sorted(repr(tuple(r)) for r in quarantine.collect())

    everything = rows_of(*stage_job.split(df, COLUMNS, ["id"], "updated_at"))
    keys = stage_job.repeated(df, COLUMNS, ["id"])
    assert rows_of(*stage_job.split(df, COLUMNS, ["id"], "updated_at", keys)) == everything
