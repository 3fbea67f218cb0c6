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
