"""On-call alerts: one message per failed task, through a pluggable notifier.

The message names the DAG, task, data interval, try number, log URL and a link to the README runbook section
to follow: for what failed, not only for the task (a quality check that could not run is no failed gate).
The link is ``C360_RUNBOOK_BASE_URL`` (the README's URL) + ``#<section>``; left unset, the README's page in the
repository when ``git remote get-url origin`` names a forge (GitHub, GitLab, Bitbucket), else a ``file://``
URL of the README in the project folder.

``C360_NOTIFIER`` selects the notifier: ``log`` (default: an ERROR log line, which the task log and any log
shipper pick up) or a dotted path to an Airflow ``BaseNotifier`` subclass taking ``message=``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("c360.alerts")

BASE_URL_ENV = "C360_RUNBOOK_BASE_URL"

# README section (anchor) per task; an exception naming its own (``runbook`` attribute, e.g.
# c360.quality.QualityGateFailed) wins, see :func:`runbook_anchor`
RUNBOOK = {
    "wait_for_inputs": "runbook-inputs-not-published",
    "export_inputs": "runbook-source-extract-failed",
    "build_with_spark": "runbook-spark-stage-failed",
    "publish_outputs": "runbook-publish-failed",
    "extract_to_raw": "runbook-source-extract-failed",
    "stage_with_spark": "runbook-spark-stage-failed",
    "load_to_staging": "runbook-load-failed",
    # anything but a failed gate: Soda could not connect, a batch that could not be rebuilt, a bad contract
    "check_quality": "runbook-quality-check-could-not-run",
    "publish_table": "runbook-publish-failed",
    # the lifecycle DAGs (c360.lifecycle_dags)
    "collect_requests": "erasure-and-retention",
    "erase_person": "erasure-and-retention",
    "erase_pending_requests": "erasure-and-retention",
    "purge_lake_partitions": "erasure-and-retention",
    "purge_history_partitions": "erasure-and-retention",
    "drop_stale_batches": "erasure-and-retention",
}


def runbook_anchor(task_id: str, exception: BaseException | None) -> str:
    """The README section for this failure: the first ``runbook`` named along the exception's chain (the
    exception, then what it was raised from), else the task's."""
    seen: set[int] = set()
    e = exception
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(getattr(e, "runbook", None), str):
            return e.runbook
        e = e.__cause__ if e.__cause__ is not None else None if e.__suppress_context__ else e.__context__
    return RUNBOOK.get(task_id, "runbook")


def readme_web_url(remote: str, branch: str = "main", path: str = "README.md") -> str | None:
    """The web page of ``path`` on ``branch`` of the repository behind a git remote URL, or None when the
    remote is no forge's (a local path, an unknown scheme). Credentials in the remote never reach the URL."""
    remote = remote.strip()
    scp = re.fullmatch(r"(?:[^@/:]+@)?([^/:]+):(?!//)(.+)", remote)  # git@github.com:org/repo.git
    if scp and "://" not in remote:
        scheme, host, repo = "https", scp.group(1), scp.group(2)
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh") or not parts.hostname:
            return None
        scheme = parts.scheme if parts.scheme in ("https", "http") else "https"
        host = parts.hostname + (f":{parts.port}" if parts.port and scheme == parts.scheme else "")
        repo = parts.path
    repo = repo.strip("/").removesuffix(".git").strip("/")
    if repo.count("/") < 1:
        return None
    if "gitlab" in host:
        page = f"-/blob/{branch}"
    elif "bitbucket" in host:
        page = f"src/{branch}"
    else:  # GitHub and GitHub Enterprise
        page = f"blob/{branch}"
    return f"{scheme}://{host}/{repo}/{page}/{path}"


def _git(project_dir: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True, text=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.lru_cache(maxsize=8)
def default_base_url(project_dir: Path | None = None) -> str:
    """The README's URL: its page in the ``origin`` repository (on the remote's default branch, ``main`` if
    unknown), else a ``file://`` URL of the README in the project folder."""
    from c360 import settings

    project_dir = Path(project_dir or settings.PROJECT_DIR).resolve()
    remote = _git(project_dir, "remote", "get-url", "origin")
    if remote:
        head = _git(project_dir, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
        branch = head.split("/", 1)[1] if head and "/" in head else "main"
        prefix = _git(project_dir, "rev-parse", "--show-prefix") or ""  # the project inside the repository
        url = readme_web_url(remote, branch, f"{prefix}README.md")
        if url:
            return url
    return (project_dir / "README.md").as_uri()


def runbook_url(task_id: str, exception: BaseException | None = None) -> str:
    base = os.environ.get(BASE_URL_ENV) or default_base_url()
    return f"{base.split('#', 1)[0]}#{runbook_anchor(task_id, exception)}"


def failure_message(context: dict[str, Any]) -> str:
    ti = context["ti"]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    exception = context.get("exception")
    return (
        f"c360 task failed: dag={ti.dag_id} task={ti.task_id} interval=[{start}, {end}) "
        f"try={ti.try_number} log={getattr(ti, 'log_url', '')} "
        f"runbook={runbook_url(ti.task_id, exception)} error={exception!r}"
    )


def notify_failure(context: dict[str, Any]) -> None:
    message = failure_message(context)
    target = os.environ.get("C360_NOTIFIER", "log")
    if target == "log":
        log.error(message)
        return
    module, _, name = target.rpartition(".")
    notifier_cls = getattr(importlib.import_module(module), name)
    notifier_cls(message=message).notify(context)
