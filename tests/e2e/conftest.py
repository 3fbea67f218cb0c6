"""The end-to-end tier: one running Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1,
LocalExecutor, metadata in the embedded PostgreSQL) shared by the modules here, driven like a user would."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def airflow(platform):
    from c360 import cli

    url = cli.start_services(_free_port())
    try:
        api = Api(url, cli.admin_password())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if len(api.get("/api/v2/dags?limit=100")["dags"]) >= 9:  # the dag-processor serialized them
                break
            time.sleep(3)
        yield api
    finally:
        cli.stop_services()
