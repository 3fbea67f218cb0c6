"""DAG integrity and policy: every DAG imports and follows the project's rules."""

from __future__ import annotations

import re

import pytest

from c360 import settings
from c360.registry import load_registry

MAINTENANCE = "maintenance"  # the lifecycle DAGs' tag (c360.lifecycle_dags): they publish no dataset


def _dataset_dags(dagbag) -> dict:
    """The DAGs that load and publish data (a dataset's, a derived product's)."""
    return {dag_id: dag for dag_id, dag in dagbag.dags.items() if MAINTENANCE not in dag.tags}


AIRFLOW2_IMPORT = re.compile(
    r"from airflow\.(decorators|operators|sensors|models\.dag|models import DAG)|from airflow " r"import DAG"
    r"|import airflow\.operators|from airflow\.models\.baseoperator"
)


def test_every_dag_imports(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG was found"


def test_the_dags_are_the_ones_the_registry_builds(dagbag):
    # every active dataset (and its full refresh) and derived product has its DAG, and there is no other
    # (but the lifecycle DAGs: test_the_lifecycle_dags)
    assert sorted(_dataset_dags(dagbag)) == load_registry().dag_ids()


def test_no_airflow2_import_paths():
    offenders = []
    for folder in ("dags", "plugins", "include", "tests"):
        for path in (settings.PROJECT_DIR / folder).rglob("*.py"):
            text = path.read_text()
            if path.name == "test_dag_integrity.py":
                continue
            for lineno, line in enumerate(text.splitlines(), 1):
                if AIRFLOW2_IMPORT.search(line):
                    offenders.append(f"{path}:{lineno}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("attr", ["tags", "doc_md", "description"])
def test_dag_metadata(dagbag, attr):
    for dag_id, dag in dagbag.dags.items():
        assert getattr(dag, attr), f"{dag_id} has no {attr}"


def test_dag_ids_say_dataset_and_cadence(dagbag):
    datasets = set(load_registry().datasets) | set(load_registry().derived)
    for dag_id in _dataset_dags(dagbag):
        assert re.fullmatch(r"[a-z0-9_]+_(hourly|daily|weekly|monthly\w*|every_\d+_minutes)", dag_id), dag_id
        assert any(dag_id.startswith(f"{d}_") for d in datasets), dag_id


def test_schedules_have_data_intervals(dagbag):
    # Interval timetables give every run a real [start, end) to extract; trigger timetables do not.
    from airflow.sdk import CronDataIntervalTimetable

    for dag_id, dag in _dataset_dags(dagbag).items():
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag_id
        assert dag.max_active_runs == 1, dag_id


def test_tasks_have_owner_retries_timeout_and_alert(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.owner and task.owner != "airflow", where
            assert task.execution_timeout is not None, where
            assert task.on_failure_callback, where
            # every task retries transient errors; a failed quality gate (bad data) fails at once instead:
            # check_quality raises AirflowFailException for it (tests/integration/test_customer_pipeline.py)
            assert task.retries >= 1 and task.retry_exponential_backoff, where


def test_publish_is_downstream_of_its_quality_gate(dagbag):
    for dag_id, dag in _dataset_dags(dagbag).items():
        publishers = [t for t in dag.tasks if t.task_id.startswith("publish")]
        assert publishers, f"{dag_id} publishes nothing"
        for task in publishers:
            upstream = {t.task_id for t in task.get_flat_relatives(upstream=True)}
            assert "check_quality" in upstream, f"{dag_id}.{task.task_id} is not gated"


def test_task_ids_are_verb_phrases(dagbag):
    verbs = ("wait", "export", "extract", "stage", "build", "load", "check", "publish")
    for dag_id, dag in _dataset_dags(dagbag).items():
        for task in dag.tasks:
            assert task.task_id.split("_")[0] in verbs, f"{dag_id}.{task.task_id}"


def test_a_disabled_dataset_gets_no_dag(monkeypatch):
    """The registry text with web_analytics disabled: its DAG file defines no DAG and parses cleanly, and the
    Customer 360 DAG is still built (web analytics is one of its optional inputs)."""
    import yaml
    from airflow.dag_processing.dagbag import DagBag

    from c360 import dag_factory, registry

    data = yaml.safe_load(registry.REGISTRY_FILE.read_text())
    data["datasets"]["web_analytics"]["status"] = "disabled"
    disabled = registry.parse_registry(yaml.safe_dump(data), source="web-disabled.yaml")
    assert dag_factory.build_dag(disabled["web_analytics"]) is None
    assert dag_factory.build_derived_dag(disabled.derived["customer_360"]).dag_id == "customer_360_daily"

    monkeypatch.setattr(registry, "load_registry", lambda *_: disabled)  # what the DAG files read
    bag = DagBag(dag_folder=str(settings.DAGS_DIR))
    assert bag.import_errors == {}
    assert sorted(_dataset_dags(bag)) == disabled.dag_ids()
    assert set(disabled.dag_ids()) == set(load_registry().dag_ids()) - {load_registry()["web_analytics"].dag_id}


def test_the_lifecycle_dags(dagbag):
    """gdpr_erasure runs on request only; housekeeping daily, on data intervals; both are maintenance DAGs whose
    tasks name what they do to what."""
    from airflow.sdk import CronDataIntervalTimetable

    maintenance = {dag_id for dag_id, dag in dagbag.dags.items() if MAINTENANCE in dag.tags}
    assert maintenance == {"gdpr_erasure", "housekeeping_daily"}
    erasure, housekeeping = dagbag.dags["gdpr_erasure"], dagbag.dags["housekeeping_daily"]
    assert erasure.schedule is None and erasure.max_active_runs == 1
    assert isinstance(housekeeping.timetable, CronDataIntervalTimetable) and housekeeping.max_active_runs == 1
    assert erasure.task_ids == ["collect_requests", "erase_person"]
    assert erasure.get_task("erase_person").max_active_tis_per_dagrun == 1  # one erasure at a time
    verbs = ("collect", "erase", "purge", "drop")
    for dag in (erasure, housekeeping):
        for t in dag.tasks:
            assert t.task_id.split("_")[0] in verbs, f"{dag.dag_id}.{t.task_id}"
