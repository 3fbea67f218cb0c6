"""Dataset names of the lineage follow the OpenLineage naming spec."""

from __future__ import annotations

import json

from c360 import lineage


def test_lake_paths_are_named_by_dataset_not_by_interval_partition():
    assert lineage.lake_name("file:///srv/c360/lake/raw/orders/interval=2026-11-20T1200") == \
        ("file", "/srv/c360/lake/raw/orders")
    assert lineage.lake_name("s3://c360-lake/prod/stage/customer/interval=2026-11-20T0000/") == \
        ("s3://c360-lake", "prod/stage/customer")
    assert lineage.lake_name("s3a://c360-lake/analytics/customer_360/interval=2026-11-21T0000/inputs/orders") == \
        ("s3://c360-lake", "analytics/customer_360/inputs/orders")


def test_postgres_tables_are_named_database_schema_table_under_host_and_port(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_C360_WAREHOUSE", json.dumps(
        {"conn_type": "postgres", "host": "db.internal", "port": 6432, "login": "u", "schema": "c360"}))
    assert lineage.table_name("c360_warehouse", "staging.orders_x") == ("postgres://db.internal:6432",
                                                                        "c360.staging.orders_x")
    monkeypatch.setenv("AIRFLOW_CONN_C360_OLTP_SOURCE", json.dumps(
        {"conn_type": "postgres", "host": "/tmp/pg-socket", "schema": "oltp"}))
    # a unix socket is this host, on the default port
    assert lineage.table_name("c360_oltp_source", "orders") == ("postgres://localhost:5432", "oltp.public.orders")


def test_the_extractor_is_configured_for_every_process():
    from c360 import settings

    assert settings.runtime_env()["AIRFLOW__OPENLINEAGE__EXTRACTORS"] == "c360.lineage.TaskLineageExtractor"
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    assert ExtractorManager().extractors["_PythonDecoratedOperator"] is lineage.TaskLineageExtractor


def test_a_spark_task_names_the_lake_paths_of_its_job_arguments():
    import base64

    from c360.spark_runner import SparkJobOperator

    inputs = {"orders": "file:///lake/analytics/c/interval=2026-11-21T0000/inputs/orders",
              "visitor_map": "s3a://bucket/landing/web/visitor_map.csv"}
    op = SparkJobOperator(task_id="build_with_spark", application="/x/job.py", application_args=[
        "--inputs", base64.b64encode(json.dumps(inputs).encode()).decode(), "--as-of", "2026-11-21T00:00:00",
        "--raw", "file:///lake/raw/orders/interval=2026-11-20T1200",
        "--out", "file:///lake/analytics/c/interval=2026-11-21T0000/outputs"])
    got = op.get_openlineage_facets_on_complete(None)
    assert sorted((d.namespace, d.name) for d in got.inputs) == [
        ("file", "/lake/analytics/c/inputs/orders"), ("file", "/lake/raw/orders"),
        ("s3://bucket", "landing/web/visitor_map.csv")]
    assert [(d.namespace, d.name) for d in got.outputs] == [("file", "/lake/analytics/c/outputs")]
    # spark-submit gets spark.openlineage.parent* from the provider (a Connect session from run_connect_job)
    assert op._openlineage_inject_parent_job_info is True


def test_recording_the_same_dataset_twice_keeps_one():
    class Task:
        pass

    context = {"task": Task()}
    orders = lineage.dataset("in", ("postgres://localhost:5432", "c360.c360.orders"))
    lineage.attach(context, [orders])
    lineage.attach(context, [orders, lineage.dataset("in", ("file", "/lake/raw/orders"))])
    got = lineage.TaskLineageExtractor(context["task"]).extract_on_complete(None)
    assert [(d.namespace, d.name) for d in got.inputs] == [("postgres://localhost:5432", "c360.c360.orders"),
                                                            ("file", "/lake/raw/orders")]
