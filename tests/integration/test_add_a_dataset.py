"""Adding a dataset is a registry entry plus a contract with its checks (docs/architecture.md "How to add a
dataset"): a throwaway dataset added to a copy of the registry gets its DAG, its contract's schema and its
warehouse table from that entry alone, and its DAG runs end to end (extract → Spark stage → batch → Soda gate →
publish) with no other file than its source table, which a new source needs anyway.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import yaml
from helpers import wh

from c360 import pg, quality, settings
from c360.registry import REGISTRY_FILE, parse_registry

pytestmark = pytest.mark.integration

NAME = "loyalty_test"  # never in the real registry
LOGICAL = datetime(2026, 11, 21, tzinfo=UTC)  # the daily interval [2026-11-20, 2026-11-21)
COLUMNS = [
    {"name": "member_id", "type": "string", "nullable": False},
    {"name": "email", "type": "string", "pii": True},
    {"name": "tier", "type": "string"},
    {"name": "points", "type": "bigint"},
    {"name": "balance", "type": "decimal"},
    {"name": "active", "type": "boolean"},
    {"name": "joined_on", "type": "date"},
    {"name": "updated_at", "type": "timestamp", "nullable": False},
]
# checks only: no column list, no types (they come from the registry)
CONTRACT = f"""
dataset: c360_warehouse/c360/staging/{NAME}
checks:
  - schema:
      name: schema matches the registry
columns:
  - name: member_id
    checks:
      - missing:
          name: member id present
      - duplicate:
          name: member id unique
"""


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    """The registry file with one more dataset, parsed: the dataset's entry."""
    contract = tmp_path_factory.mktemp("contract") / f"{NAME}.yml"
    contract.write_text(CONTRACT)
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    data["datasets"][NAME] = {
        "description": "A throwaway dataset of the add-a-dataset test.", "owner": "tests", "status": "active",
        "cadence": {"schedule": "0 0 * * *"},
        "source": {"system": "oltp", "conn_id": settings.OLTP_CONN_ID, "table": NAME, "watermark": "updated_at"},
        "business_key": ["member_id"], "version_column": "updated_at", "columns": COLUMNS,
        "transform": {"spark_job": "stage_job.py"}, "contract": str(contract),
        "outputs": [{"table": f"c360.{NAME}"}], "start_date": "2026-01-01",
        # the email is PII: a member is a customer, by id (what the GDPR erasure removes)
        "erasure": [{"column": "member_id", "holds": "customer_id"}],
    }
    registry = parse_registry(yaml.safe_dump(data), source="test copy")
    assert f"{NAME}_daily" in registry.dag_ids()
    return registry[NAME]


def test_the_dag_comes_from_the_entry(entry):
    from c360.dag_factory import build_dag, stage_spec

    dag = build_dag(entry)
    assert dag.dag_id == f"{NAME}_daily"
    assert [t.task_id for t in dag.topological_sort()] == [
        "extract_to_raw", "stage_with_spark", "load_to_staging", "check_quality", "publish_table"]
    spark = json.loads(base64.b64decode(stage_spec(entry)))
    assert [(c["name"], c["type"]) for c in spark["columns"]] == [
        ("member_id", "string"), ("email", "string"), ("tier", "string"), ("points", "bigint"),
        ("balance", "decimal(18,2)"), ("active", "boolean"), ("joined_on", "date"), ("updated_at", "timestamp_ntz")]
    assert f"`c360.{NAME}`" in dag.doc_md and f"`{entry.contract}`" in dag.doc_md


def test_the_contract_schema_comes_from_the_entry(entry):
    contract = yaml.safe_load(quality.contract_for(entry.contract_path, f"staging.{NAME}_batch", entry.columns))
    assert [(c["name"], c["data_type"]) for c in contract["columns"]] == [
        ("member_id", "text"), ("email", "text"), ("tier", "text"), ("points", "bigint"), ("balance", "numeric"),
        ("active", "boolean"), ("joined_on", "date"), ("updated_at", "timestamp without time zone")]
    assert [c["name"] for c in contract["columns"][0]["checks"][0].values()] == ["member id present"]
    assert contract["dataset"] == f"c360_warehouse/c360/staging/{NAME}_batch"


def test_a_contract_that_types_a_column_is_refused(entry, tmp_path):
    typed = tmp_path / "typed.yml"
    typed.write_text(CONTRACT.replace("  - name: member_id\n", "  - name: member_id\n    data_type: text\n"))
    with pytest.raises(quality.QualityCheckError, match=r"typed.yml: columns\[0\]: column 'member_id' declares a "
                                                          r"data_type; types come from the registry"):
        quality.contract_for(typed, None, entry.columns)
    unknown = tmp_path / "unknown.yml"
    unknown.write_text(CONTRACT.replace("  - name: member_id\n", "  - name: member_no\n"))
    with pytest.raises(quality.QualityCheckError, match=r"column 'member_no' is not in the registry's columns"):
        quality.contract_for(unknown, None, entry.columns)


def test_the_table_comes_from_the_entry_and_the_dag_publishes_it(platform, entry):
    """The only thing written by hand: the source table (a new source's own schema). Everything the platform
    creates (published table, batch, contract schema, Spark types) comes from the entry."""
    from c360 import runs

    with pg.connect(settings.OLTP_CONN_ID) as conn:
        conn.execute(f"drop table if exists {NAME}")
        conn.execute(f"create table {NAME} (member_id text, email text, tier text, points bigint, balance numeric,"
                     f" active boolean, joined_on date, updated_at timestamp)")
        conn.execute(f"insert into {NAME} select 'M' || g, 'm' || g || '@example.com', 'gold', g::bigint * 1000000000, "
                     f"g + 0.25, g % 2 = 0, date '1990-01-01' + g, timestamp '2026-11-20 00:00' + g * interval "
                     f"'1 minute' from generate_series(1, 50) g")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(f"drop table if exists c360.{NAME} cascade")  # with the masking views a failed run left

    from airflow.api.common.delete_dag import delete_dag
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from c360.dag_factory import build_dag

    dag = build_dag(entry)
    bag = DagBag(dag_folder=str(settings.PROJECT_DIR / "tests" / "golden"))  # holds no DAG file
    bag.bag_dag(dag)
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)  # dag.test needs the DAG serialized, as the processor would
    try:
        dr = runs.test_run(dag, LOGICAL)
    finally:
        delete_dag(dag.dag_id)  # the Airflow of later test modules never sees it
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "success", states

    types = wh("select column_name, data_type, is_nullable from information_schema.columns where "
                "table_schema = 'c360' and table_name = %s order by ordinal_position", (NAME,))
    assert types == [("member_id", "text", "NO"), ("email", "text", "YES"), ("tier", "text", "YES"),
                     ("points", "bigint", "YES"), ("balance", "numeric", "YES"), ("active", "boolean", "YES"),
                     ("joined_on", "date", "YES"), ("updated_at", "timestamp without time zone", "NO")]
    (key,) = wh("select pg_get_constraintdef(oid) from pg_constraint where conrelid = %s::regclass "
                 "and contype = 'p'", (f"c360.{NAME}",))
    assert key == ("PRIMARY KEY (member_id)",)
    assert wh(f"select count(*), sum(points), sum(balance) from c360.{NAME}") == [
        (50, 1275 * 1000000000, pytest.approx(1275 + 12.5))]
    checks = dict(wh("select check_name, outcome from quality.check_results where dataset = %s and "
                      "dag_run_id = %s", (NAME, dr.run_id)))
    assert checks["schema matches the registry"] == "passed", checks
    assert checks["member id unique"] == "passed"
    # its masking views came from the entry too (c360.governance): the consumer's hashes the PII column
    assert wh(f"select count(*), bool_and(email ~ '^[0-9a-f]{{64}}$') from consumer.{NAME}") == [(50, True)]
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        conn.execute(f"drop table {NAME}")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(f"drop table c360.{NAME} cascade")  # and its masking views
