"""The quality gate's lineage: the published table as input, the batch as its version, the quality facets as
input facets, valid against the OpenLineage spec in ../shared/openlineage-spec (and the project's own schema
for its custom facet). The full DAG runs are tests/integration/test_lineage.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from integration import openlineage_spec  # tests/integration (tests/ is on the path)

from c360 import lineage
from c360.quality import CheckResult

RESULTS = [
    CheckResult("schema matches the registry", None, "passed", 0.0, "level: fail must be less than or equal: 0",
                "blocking", unit="mismatches", kind="schema"),
    CheckResult("freshness - newest row before the interval end", "updated_at", "warned", 14.05,
                "level: warn must be less than: 12", "warning", unit="hours", kind="freshness"),
    CheckResult("customer id present", "customer_id", "failed", 3.0, "level: fail must be: 0", "blocking", unit="rows",
                kind="not_null", diagnostics={"missing_count": 3, "missing_percent": 0.6}),
    CheckResult("trend - bounce rate", None, "passed", 2.5, "level: warn must be less than: 15", "warning", unit=None,
                kind="custom_metric"),
    CheckResult("email format", "email_address", "not_evaluated", None, None, "blocking", unit="rows", kind="format"),
]


@pytest.fixture
def event(monkeypatch):
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde

    monkeypatch.setenv("AIRFLOW_CONN_C360_WAREHOUSE", json.dumps(
        {"conn_type": "postgres", "host": "db.internal", "port": 6432, "login": "u", "schema": "c360"}))
    checked = lineage.checked_table("c360.customer", "staging.customer_daily__20261120t0000", RESULTS, 500)
    return Serde.to_dict(RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                                  run=Run(runId=str(uuid.uuid4())), job=Job(namespace="c360", name="d.check_quality"),
                                  inputs=[checked], producer="https://example.org/test"))


def test_the_gate_reads_the_published_table_in_the_batch_version(event):
    (checked,) = event["inputs"]
    assert (checked["namespace"], checked["name"]) == ("postgres://db.internal:6432", "c360.c360.customer")
    assert checked["facets"]["version"]["datasetVersion"] == "staging.customer_daily__20261120t0000"
    assert set(checked["facets"]) == {"version"}
    assert set(checked["inputFacets"]) == {"dataQualityAssertions", "dataQualityMetrics", "c360_qualityScore"}


def test_assertions_are_classified_and_named(event):
    assertions = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    got = {a["name"]: (a["assertion"], a.get("column"), a["success"], a["severity"], a.get("actual"),
                       a.get("params", {}).get("unit")) for a in assertions}
    assert got == {
        "schema matches the registry": ("schema", None, True, "error", "0.0", "mismatches"),
        "freshness - newest row before the interval end": ("freshness", "updated_at", False, "warn", "14.05", "hours"),
        "customer id present": ("not_null", "customer_id", False, "error", "3.0", "rows"),
        "trend - bounce rate": ("custom_metric", None, True, "warn", "2.5", None),
    }  # the not-evaluated check asserts nothing


def test_the_score_travels_with_the_assertions(event):
    score = event["inputs"][0]["inputFacets"]["c360_qualityScore"]
    assert (score["score"], score["checksPassed"], score["checksWarned"], score["checksFailed"],
            score["checksNotEvaluated"]) == (50.0, 2, 1, 1, 1)
    assert score["_schemaURL"].startswith(lineage.SCHEMA_BASE) and score["_producer"] == lineage.PRODUCER


def test_the_event_and_every_facet_validate_against_the_spec(event):
    assert openlineage_spec.validate(event) == 4  # version, assertions, metrics, and the score's own schema
    broken = json.loads(json.dumps(event))
    broken["inputs"][0]["inputFacets"]["c360_qualityScore"]["checksFailed"] = -1
    with pytest.raises(Exception, match="-1"):
        openlineage_spec.validate(broken)
