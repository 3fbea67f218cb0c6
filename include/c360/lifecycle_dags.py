"""The data lifecycle DAGs: ``gdpr_erasure`` (a person forgotten, on request) and ``housekeeping_daily``
(retention, and erasure requests left pending). Thin: the work is ``c360.erasure`` and ``c360.retention``.

Both are tagged ``maintenance``: they publish no dataset, so the dataset DAGs' policies (a quality gate before
every publish, one data interval per run) do not apply to them; their own are in ``tests/test_dag_integrity.py``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from c360.dag_factory import DEFAULT_ARGS, START_DATE
from c360.registry import Registry

OWNER = "data-governance"
TAG = "maintenance"
ERASURE_DAG_ID = "gdpr_erasure"
HOUSEKEEPING_DAG_ID = "housekeeping_daily"
HOUSEKEEPING_SCHEDULE = "30 5 * * *"  # daily, after the night's loads


def build_erasure_dag(*, doc_md: str | None = None) -> DAG:
    """``gdpr_erasure``: triggered with ``{"customer_id": "..."}`` it files that request and carries it out;
    triggered without, it carries out every pending request of ``governance.erasure_requests``."""
    tasks = ("Tasks: `collect_requests` (files the conf's request, else lists the pending ones) → `erase_person`, "
             "one mapped instance per request, one at a time (`c360.erasure.process`).")
    with DAG(
        dag_id=ERASURE_DAG_ID,
        description="GDPR erasure: a person's rows out of every table, batch and lake file; their ids suppressed",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "owner": OWNER},
        tags=["c360", "governance", "gdpr", TAG],
        doc_md=f"{doc_md.rstrip()}\n\n{tasks}\n" if doc_md else tasks,
        params={"customer_id": Param(None, type=["null", "string"],
                                     description="The customer id to erase; empty: the pending requests")},
    ) as dag:

        @task(task_id="collect_requests")
        def collect_requests(**context: Any) -> list[int]:
            from c360 import erasure

            customer_id = (context["params"].get("customer_id") or "").strip()
            if customer_id:
                user = getattr(context.get("dag_run"), "triggering_user_name", None)
                return [erasure.request(customer_id, requested_by=user)]
            return erasure.pending()

        @task(task_id="erase_person", multiple_outputs=False, max_active_tis_per_dagrun=1)
        def erase_person(request_id: int, **context: Any) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from c360 import erasure

            try:
                return erasure.process(request_id, run_id=context["run_id"])
            except erasure.ErasureRefused as e:  # a retry would refuse again: a steward reviews the request
                raise AirflowFailException(str(e)) from e

        erase_person.expand(request_id=collect_requests())
    return dag


def build_housekeeping_dag(registry: Registry | None = None, *, doc_md: str | None = None) -> DAG:
    """``housekeeping_daily``: retention as of the run's interval end (``c360.retention``), and the erasure
    requests still pending (so a request filed in the table is carried out within a day)."""
    tasks = ("Tasks (independent): `purge_lake_partitions`, `purge_history_partitions`, `drop_stale_batches`, "
             "`erase_pending_requests`.")
    with DAG(
        dag_id=HOUSEKEEPING_DAG_ID,
        description="Retention (lake and history partitions, stale batch tables) and pending erasure requests",
        schedule=CronDataIntervalTimetable(HOUSEKEEPING_SCHEDULE, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "owner": OWNER},
        tags=["c360", "governance", "retention", TAG],
        doc_md=f"{doc_md.rstrip()}\n\n{tasks}\n" if doc_md else tasks,
    ) as dag:

        @task(task_id="purge_lake_partitions")
        def purge_lake_partitions(**context: Any) -> list[dict[str, Any]]:
            from c360 import retention

            return retention.purge_lake(context["data_interval_end"], registry)

        @task(task_id="purge_history_partitions")
        def purge_history_partitions(**context: Any) -> list[dict[str, Any]]:
            from c360 import retention

            return retention.purge_history(context["data_interval_end"], registry)

        @task(task_id="drop_stale_batches")
        def drop_stale_batches(**context: Any) -> list[dict[str, Any]]:
            from c360 import retention

            return retention.drop_stale_batches(context["data_interval_end"], registry)

        @task(task_id="erase_pending_requests")
        def erase_pending_requests(**context: Any) -> list[dict[str, Any]]:
            from airflow.sdk.exceptions import AirflowFailException

            from c360 import erasure

            done, refused = [], []
            for rid in erasure.pending():
                try:
                    done.append(erasure.process(rid, run_id=context["run_id"], registry=registry))
                except erasure.ErasureRefused as e:  # the others go on; the task fails to show it
                    refused.append(f"request {rid}: {e}")
            if refused:
                raise AirflowFailException("erasure requests refused (a steward reviews them): " + "; ".join(refused))
            return done

        purge_lake_partitions()
        purge_history_partitions()
        drop_stale_batches()
        erase_pending_requests()
    return dag
