"""OpenLineage for every task of every DAG, compared with golden lineage and validated against the spec.

Every DAG runs once (dag.test, as `make demo` does: a bootstrap then the derived product). For each DAG the
COMPLETE events are reduced to their stable fields (job names, event types, input and output datasets,
facet names) and compared with ``tests/golden/lineage/<dag_id>.json``; run-specific parts (the state folder,
interval partitions, batch table suffixes) are normalised. ``C360_UPDATE_GOLDEN=1`` rewrites the files
(review the diff). Every event written to the lineage file by the integration tests so far validates against
``../shared/openlineage-spec``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest

from c360 import generator, pg, settings
from c360.registry import load_registry
from c360.runs import run_dags

from . import openlineage_spec

pytestmark = pytest.mark.integration

GOLDEN = settings.PROJECT_DIR / "tests" / "golden" / "lineage"
SCALE = generator.Scale(customers=800, days=10, orders_per_day=300, sessions_per_hour=10, ga_days=1)
LOGICAL = datetime.fromisoformat(settings.DEMO_DATE).replace(tzinfo=UTC) + timedelta(days=1)


@pytest.fixture(scope="module")
def runs(sources):
    """Every DAG run once on the module's sources and a fresh warehouse; the lineage events they wrote."""
    before = len(openlineage_spec.read_events())
    states = run_dags(LOGICAL)
    assert set(states.values()) == {"success"}, states
    return openlineage_spec.read_events()[before:]


def _normalise(text: str) -> str:
    text = text.replace(str(settings.state_dir()), "<state>")
    text = re.sub(r"__\d{8}t\d{4}", "__<interval>", text)
    return text


def _dataset(d: dict) -> str:
    facets = sorted({*d.get("facets", {}), *d.get("inputFacets", {}), *d.get("outputFacets", {})})
    return f"{_normalise(d['namespace'])} {_normalise(d['name'])} [{', '.join(facets)}]"


def summary(events: list[dict], dag_id: str) -> dict:
    """task → event types, and the datasets of its COMPLETE event with their facet names."""
    out: dict[str, dict] = {}
    for e in events:
        job = e["job"]["name"]
        if not job.startswith(f"{dag_id}."):
            continue
        task = out.setdefault(job.removeprefix(f"{dag_id}."), {"events": [], "inputs": [], "outputs": []})
        task["events"] = sorted({*task["events"], e["eventType"]})
        if e["eventType"] == "COMPLETE":
            task["inputs"] = sorted({*task["inputs"], *map(_dataset, e.get("inputs", []))})
            task["outputs"] = sorted({*task["outputs"], *map(_dataset, e.get("outputs", []))})
    return out


UPDATE = "C360_UPDATE_GOLDEN"


def _regenerate(dag_id: str) -> str:
    return (f"{UPDATE}=1 pytest tests/integration/test_lineage.py -k 'golden and {dag_id}' (writes it from this "
            f"run's events; review and commit the file)")


def test_every_dag_has_its_golden_lineage_and_no_other():
    """One golden file per DAG the registry builds: a new dataset names the command that writes its file; a file
    left from a DAG that is gone fails here, not silently."""
    dag_ids = load_registry().dag_ids()
    stale = sorted({p.stem for p in GOLDEN.glob("*.json")} - set(dag_ids))
    assert not stale, f"golden lineage of no DAG the registry builds: delete {[f'{GOLDEN}/{d}.json' for d in stale]}"
    missing = [d for d in dag_ids if not (GOLDEN / f"{d}.json").is_file()]
    assert os.environ.get(UPDATE) or not missing, "no golden lineage for " + "; ".join(
        f"{d}: run {_regenerate(d)}" for d in missing)


@pytest.mark.parametrize("dag_id", load_registry().dag_ids())
def test_lineage_matches_the_golden_lineage(runs, dag_id):
    got = summary(runs, dag_id)
    path = GOLDEN / f"{dag_id}.json"
    if os.environ.get(UPDATE):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if not path.is_file():
        pytest.fail(f"{dag_id} has no golden lineage {path}: run {_regenerate(dag_id)}", pytrace=False)
    assert got == json.loads(path.read_text()), f"{dag_id}: lineage changed; if intended, run {_regenerate(dag_id)}"


def test_every_task_reads_or_writes_a_dataset(runs, dagbag):
    for dag_id, dag in dagbag.dags.items():
        if "maintenance" in dag.tags:  # the lifecycle DAGs (c360.lifecycle_dags) only remove data
            continue
        got = summary(runs, dag_id)
        for task_id in dag.task_ids:
            assert got[task_id]["events"] == ["COMPLETE", "START"], (dag_id, task_id)
            assert got[task_id]["inputs"] or got[task_id]["outputs"], (dag_id, task_id)


def test_the_gate_reports_one_assertion_per_check_on_the_published_table(runs):
    """check_quality reads the published table (a stable dataset) in the version of this run's batch; its input
    facets hold one assertion per check (classification, name, column, outcome, measured value and unit, as
    recorded in quality.check_results), the metrics, and the score recorded in quality.dataset_scores."""
    (event,) = [e for e in runs if e["job"]["name"] == "customer_daily.check_quality" and e["eventType"] == "COMPLETE"]
    (checked,) = event["inputs"]
    assert checked["namespace"].startswith("postgres://") and checked["name"] == "c360.c360.customer"
    assert re.fullmatch(r"staging\.customer_daily__\d{8}t\d{4}", checked["facets"]["version"]["datasetVersion"])
    assert set(checked["facets"]) == {"version"}  # quality facets are input facets (spec: InputDatasetFacet)
    run_id = event["run"]["facets"]["airflow"]["dagRun"]["run_id"]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        rows = conn.execute("select check_name, column_name, outcome, measured_value, unit from quality.check_results "
                            "where dataset = 'customer' and dag_run_id = %s and outcome <> 'not_evaluated'",
                            (run_id,)).fetchall()
        score = conn.execute("select score, checks_passed, checks_warned, checks_failed, checks_not_evaluated "
                             "from quality.dataset_scores where dataset = 'customer' and dag_run_id = %s",
                             (run_id,)).fetchone()
    assertions = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert sorted((a["name"], a.get("column"), a["success"], a.get("actual"), a.get("params", {}).get("unit"))
                  for a in assertions) == \
        sorted((name, column, outcome == "passed", None if value is None else repr(value), unit)
               for name, column, outcome, value, unit in rows)
    kinds = {a["name"]: a["assertion"] for a in assertions}
    assert kinds["customer id present"] == "not_null" and kinds["customer id unique"] == "unique"
    assert kinds["accuracy - gender"] == "accepted_values" and kinds["value range - age"] == "accepted_range"
    assert kinds["email format"] == "format" and kinds["schema matches the registry"] == "schema"
    assert kinds["freshness - newest row before the interval end"] == "freshness"
    assert checked["inputFacets"]["dataQualityMetrics"]["rowCount"] > 0
    got = checked["inputFacets"]["c360_qualityScore"]
    assert (got.get("score"), got["checksPassed"], got["checksWarned"], got["checksFailed"],
            got["checksNotEvaluated"]) == (None if score[0] is None else float(score[0]), *score[1:])
    assert openlineage_spec.validate(event) >= 4  # version, assertions, metrics and the score facet's own schema


def test_the_outputs_gate_reports_each_published_output(runs):
    (event,) = [e for e in runs if e["job"]["name"] == "customer_360_daily.check_quality"
                and e["eventType"] == "COMPLETE"]
    d = load_registry().derived["customer_360"]
    assert sorted(i["name"] for i in event["inputs"]) == sorted(f"c360.{o.table}" for o in d.outputs)
    for i in event["inputs"]:
        assert i["facets"]["version"]["datasetVersion"].startswith("staging.customer_360_")
        assert {"dataQualityAssertions", "dataQualityMetrics", "c360_qualityScore"} <= set(i["inputFacets"])


def test_publish_reports_the_table_schema_and_rows_written(runs):
    (event,) = [e for e in runs if e["job"]["name"] == "orders_every_15_minutes.publish_table"
                and e["eventType"] == "COMPLETE"]
    (out,) = event["outputs"]
    assert out["name"] == "c360.c360.orders"
    run_id = event["run"]["facets"]["airflow"]["dagRun"]["run_id"]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        (written,) = conn.execute("select rows_published from meta.publish_log where dag_run_id = %s",
                                  (run_id,)).fetchone()
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == written
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == load_registry()["orders"].column_names


def test_spark_tasks_name_their_lake_paths(runs):
    (event,) = [e for e in runs if e["job"]["name"] == "customer_daily.stage_with_spark"
                and e["eventType"] == "COMPLETE"]
    lake = str(settings.state_dir() / "lake")
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", f"{lake}/raw/customer")]
    assert sorted((d["namespace"], d["name"]) for d in event["outputs"]) == [
        ("file", f"{lake}/quarantine/customer"), ("file", f"{lake}/stage/customer")]


def test_every_event_written_so_far_validates_against_the_spec(runs):
    events = openlineage_spec.read_events()
    assert len(events) >= len(runs) > 0
    assert sum(openlineage_spec.validate(e) for e in events) > len(events)
