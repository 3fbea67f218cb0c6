"""On-call alerts: the message names what on-call needs; the notifier is pluggable."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from airflow.sdk import BaseNotifier

from c360 import alerts

SENT: list[str] = []


class ListNotifier(BaseNotifier):
    """A real notifier (Airflow's base class) that keeps its messages, standing in for Slack or e-mail."""

    template_fields = ("message",)

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def notify(self, context):
        SENT.append(self.message)


def _context(task_id="stage_with_spark"):
    ti = SimpleNamespace(dag_id="orders_every_15_minutes", task_id=task_id, try_number=3,
                         log_url="http://127.0.0.1:8080/dags/orders_every_15_minutes/runs/r1/tasks/x")
    return {"ti": ti, "data_interval_start": datetime(2026, 11, 20, 12, 45, tzinfo=UTC),
            "data_interval_end": datetime(2026, 11, 20, 13, tzinfo=UTC), "exception": RuntimeError("boom")}


BASE = "https://github.com/org/c360/blob/main/README.md"


def _runbook(msg: str) -> str:
    return msg.split(" runbook=", 1)[1].split(" ", 1)[0]


def test_message_names_dag_task_interval_try_log_and_runbook(monkeypatch):
    monkeypatch.setenv(alerts.BASE_URL_ENV, BASE)
    msg = alerts.failure_message(_context())
    for part in ("dag=orders_every_15_minutes", "task=stage_with_spark", "2026-11-20 12:45:00+00:00",
                 "2026-11-20 13:00:00+00:00", "try=3", "log=http://127.0.0.1:8080/dags/",
                 f"runbook={BASE}#runbook-spark-stage-failed", "boom"):
        assert part in msg, part


def _readme_headings() -> set[str]:
    from c360 import settings

    readme = (settings.PROJECT_DIR / "README.md").read_text().lower()
    return {line[4:].replace(":", "").replace(" ", "-") for line in readme.splitlines() if line.startswith("### ")}


def test_every_task_has_a_runbook_section_in_the_readme(dagbag):
    from c360 import quality

    headings = _readme_headings()
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert alerts.RUNBOOK[task.task_id] in headings, task.task_id
    assert quality.QualityGateFailed.runbook in headings


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise exc from cause
    except BaseException as e:  # noqa: BLE001 - the raised exception, with its traceback and cause
        return e


def test_the_runbook_follows_what_failed_not_only_the_task(monkeypatch):
    """A failed gate (bad data, raised as AirflowFailException from QualityGateFailed) is "quality gate failed";
    anything else in check_quality (Soda could not connect, a batch that could not be rebuilt) is not."""
    from airflow.sdk.exceptions import AirflowFailException

    from c360 import quality, steps

    monkeypatch.setenv(alerts.BASE_URL_ENV, BASE)
    gate = _raised(AirflowFailException("customer: 1 blocking check(s) failed"),
                   quality.QualityGateFailed("customer: 1 blocking check(s) failed"))
    infra = [quality.QualityCheckError("Soda could not verify quality/customer.yml: connection refused"),
             steps.BatchUnavailable("customer 2026-11-22T0000: batch table staging.x is gone and ..."),
             ConnectionError("could not connect to server")]
    cases = [(gate, "runbook-quality-gate-failed")] + [(e, "runbook-quality-check-could-not-run") for e in infra]
    for exc, anchor in cases:
        msg = alerts.failure_message({**_context("check_quality"), "exception": exc})
        assert _runbook(msg) == f"{BASE}#{anchor}", exc
    # raised "from None", a gate failure handled on the way is no cause
    hidden = _raised(RuntimeError("publish failed"), None)
    hidden.__context__ = quality.QualityGateFailed("x")
    assert alerts.runbook_anchor("publish_table", hidden) == "runbook-publish-failed"


def test_default_notifier_logs_an_error(monkeypatch, caplog):
    monkeypatch.delenv("C360_NOTIFIER", raising=False)
    monkeypatch.setenv(alerts.BASE_URL_ENV, BASE)
    with caplog.at_level(logging.ERROR, logger="c360.alerts"):
        alerts.notify_failure(_context("publish_table"))
    assert f"runbook={BASE}#runbook-publish-failed" in caplog.text


@pytest.mark.parametrize(("remote", "url"), [
    ("git@github.com:org/c360.git", "https://github.com/org/c360/blob/main/README.md"),
    ("ssh://git@github.com:22/org/c360.git", "https://github.com/org/c360/blob/main/README.md"),
    ("https://github.com/org/c360", "https://github.com/org/c360/blob/main/README.md"),
    # a token in the remote never reaches an alert
    ("https://x-access-token:ghp_SECRET@github.com/org/c360.git/", "https://github.com/org/c360/blob/main/README.md"),
    ("https://git.example.com:8443/data/c360.git", "https://git.example.com:8443/data/c360/blob/main/README.md"),
    ("git@gitlab.com:group/sub/c360.git", "https://gitlab.com/group/sub/c360/-/blob/main/README.md"),
    ("https://bitbucket.org/org/c360.git", "https://bitbucket.org/org/c360/src/main/README.md"),
    ("/srv/git/c360.git", None),
    ("file:///srv/git/c360.git", None),
    ("../c360", None),
])
def test_readme_url_from_a_git_remote(remote, url):
    assert alerts.readme_web_url(remote) == url


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_default_base_url_is_the_readme_in_the_origin_repository(tmp_path):
    """A real repository: its origin and default branch, and the project's folder inside it."""
    repo = tmp_path / "repo"
    project = repo / "products" / "c360"
    project.mkdir(parents=True)
    _git(repo, "init", "-q")
    assert alerts.default_base_url(project) == (project / "README.md").as_uri()  # no origin yet
    _git(repo, "remote", "add", "origin", "https://bot:s3cret@github.com/acme/data.git")
    _git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    alerts.default_base_url.cache_clear()
    assert alerts.default_base_url(project) == "https://github.com/acme/data/blob/trunk/products/c360/README.md"


def test_default_base_url_without_git_is_a_file_url_of_the_readme(tmp_path, monkeypatch):
    monkeypatch.delenv(alerts.BASE_URL_ENV, raising=False)
    folder = tmp_path / "no repo here"
    folder.mkdir()
    alerts.default_base_url.cache_clear()
    url = alerts.default_base_url(folder)
    assert url == f"file://{quote(str(folder))}/README.md" and " " not in url


def test_the_setting_wins_and_its_fragment_is_replaced(monkeypatch):
    monkeypatch.setenv(alerts.BASE_URL_ENV, "https://wiki.example.com/c360/README.md#top")
    assert alerts.runbook_url("load_to_staging") == "https://wiki.example.com/c360/README.md#runbook-load-failed"
    monkeypatch.delenv(alerts.BASE_URL_ENV)
    alerts.default_base_url.cache_clear()
    assert alerts.runbook_url("load_to_staging") == f"{alerts.default_base_url()}#runbook-load-failed"


def test_notifier_is_pluggable(monkeypatch):
    monkeypatch.setenv("C360_NOTIFIER", f"{__name__}.ListNotifier")
    SENT.clear()
    alerts.notify_failure(_context("publish_table"))
    assert len(SENT) == 1 and "task=publish_table" in SENT[0]
