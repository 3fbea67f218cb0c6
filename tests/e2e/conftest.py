"""The end-to-end tier: one running Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1,
LocalExecutor, metadata in the embedded PostgreSQL) shared by the modules here, driven like a user would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest
from helpers import free_port

from c360 import generator, pg, settings
from c360.registry import load_registry

TIMEOUT = 900
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# The sources of every module here, whichever loads them: data up to today, since unpausing a DAG also schedules
# its latest interval, which must find its data too.
SCALE = generator.Scale(customers=500, days=6, orders_per_day=100, sessions_per_hour=8, ga_days=2,
                        end=f"{TODAY:%Y-%m-%d}")
# what a run records per dataset in the warehouse besides its published table
RESULT_TABLES = ("quality.check_results", "quality.dataset_scores", "quality.score_history",
                 "quality.check_history", "meta.publish_log")


class Api:
    def __init__(self, url: str, password: str):
        self.url = url
        self.token = self._call("POST", "/auth/token", {"username": "admin", "password": password},
                                auth=False)["access_token"]

    def _call(self, method: str, path: str, body=None, auth: bool = True):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    get = lambda self, path: self._call("GET", path)  # noqa: E731
    post = lambda self, path, body: self._call("POST", path, body)  # noqa: E731
    patch = lambda self, path, body: self._call("PATCH", path, body)  # noqa: E731

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")["dag_runs"]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict]:
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t for t in tis}


def wait(what: str, condition, timeout: float = TIMEOUT, poll: float = 3):
    """``condition()``'s first truthy result, asked every ``poll`` seconds; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def leave_as_found(api: Api, dag_ids, datasets) -> None:
    """Leave the shared Airflow as the modules here find it: every DAG paused, no backfill or run of ``dag_ids``
    and no quality result or publish of ``datasets``. A task still executing finishes first (a paused DAG
    starts no other); a run it leaves unfinished is marked failed, as only finished runs can be deleted."""
    for dag_id in dag_ids:
        api.patch(f"/api/v2/dags/{dag_id}?update_mask=is_paused", {"is_paused": True})
        for b in api.get(f"/api/v2/backfills?dag_id={dag_id}")["backfills"]:
            if b["completed_at"] is None:
                api._call("PUT", f"/api/v2/backfills/{b['id']}/cancel")

    def executing() -> list[str]:
        return [f"{dag_id} {r['dag_run_id']} {t}" for dag_id in dag_ids for r in api.runs(dag_id)
                if r["state"] not in ("success", "failed")
                for t, ti in api.tasks(dag_id, r["dag_run_id"]).items() if ti["state"] in ("queued", "running")]

    wait("the paused DAGs' executing tasks to finish", lambda: not executing())
    for dag_id in dag_ids:
        for r in api.runs(dag_id):
            run = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(r['dag_run_id'], safe='')}"
            if r["state"] not in ("success", "failed", "queued"):
                api.patch(run, {"state": "failed"})
            api._call("DELETE", run)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for table in RESULT_TABLES:  # constants
            conn.execute(f"delete from {table} where dataset = any(%s)", (list(datasets),))
    left = {d: (api.get(f"/api/v2/dags/{d}")["is_paused"], len(api.runs(d))) for d in dag_ids}
    assert left == {d: (True, 0) for d in dag_ids}, f"left behind (paused, runs): {left}"


@pytest.fixture(scope="module")
def scale():
    """What the `sources` fixture loads here: the tier's SCALE."""
    return SCALE


@pytest.fixture(scope="session")
def airflow(platform):
    from c360 import services

    url = services.start_services(free_port())
    try:
        api = Api(url, services.admin_password())
        dag_ids = set(load_registry().dag_ids())
        wait("the dag-processor to serialize every DAG the registry builds",  # the API lists serialized DAGs
             lambda: dag_ids <= {d["dag_id"] for d in api.get("/api/v2/dags?limit=100")["dags"]}, timeout=300)
        yield api
    finally:
        services.stop_services()
