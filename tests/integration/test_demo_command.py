"""`make demo`'s command as its user runs it (the demo's own scale): a subprocess with its own state folder (its own embedded PostgreSQL,
Spark Connect server and Airflow DB), its output read from a pipe as CI reads it.

On success it prints at most 60 lines: a line per step and DAG, the summary, and where the full log is; the log
file holds Airflow's task logs. A failing run says which task of which DAG failed, shows that task's last log
lines (its exception's message included) and the log's path, and exits non-zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port

from c360 import settings
from c360.registry import load_registry

pytestmark = pytest.mark.integration

LOG_LINE = re.compile(r"\[(info|warning|error|debug) *\]|Traceback|INFO|WARNING")


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo-state")
    # nothing of the test session's environment (its connections, Airflow home, state folder) reaches the demo
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "C360_"))}
    env.update(C360_STATE_DIR=str(state), C360_SPARK_CONNECT_PORT=str(free_port()),
               PYTHONPATH=f"{settings.INCLUDE_DIR}:{settings.SPARK_DIR}", SODA_CORE_TELEMETRY_ENABLED="false")
    yield env
    subprocess.run([sys.executable, "-m", "c360.cli", "down"], env=env, capture_output=True, timeout=120)


def _demo(env: dict[str, str], **extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    proc = subprocess.run([sys.executable, "-m", "c360.cli", "demo"], env={**env, **extra},
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    found = re.search(r"Full log: (\S+\.log)", proc.stdout + proc.stderr)
    assert found, f"the demo does not say where its log is:\n{proc.stdout}\n{proc.stderr}"
    return proc, Path(found[1])


def test_demo_prints_a_line_per_step_and_logs_the_rest(demo_env):
    proc, log = _demo(demo_env)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert len(out) + len(proc.stderr.splitlines()) <= 60, f"{len(out)} lines:\n{proc.stdout}\n{proc.stderr}"
    noise = [line for line in out if LOG_LINE.search(line)]
    assert not noise, f"log lines on the terminal: {noise}"
    registry = load_registry()
    dag_ids = {d.dag_id for d in [*registry.active(), *registry.derived.values()]}
    for dag_id in dag_ids:
        assert any(re.match(rf"✓ {dag_id} +success", line) for line in out), f"no success line for {dag_id}"
    assert any(line.strip().startswith("c360.customer ") for line in out), "the summary is printed"
    assert "customers it reads" in proc.stdout, "the governance table is printed"
    text = log.read_text()
    assert log.parent == Path(demo_env["C360_STATE_DIR"]) / "logs"
    assert "[DAG TEST] running task <TaskInstance: customer_daily.extract_to_raw" in text, "task logs are in the file"


def test_a_failing_demo_names_the_task_and_shows_its_error(demo_env):
    proc, log = _demo(demo_env, C360_START_DATE="2030-01-01")
    assert proc.returncode == 1, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    assert re.search(r"^✗ customer_daily +failed: extract_to_raw failed", out, re.M), out
    block = out[out.index("✗ customer_daily"):].split("\n✓ ", 1)[0].split("\n✗ ", 1)[0]
    assert "last lines of task extract_to_raw:" in block
    assert "before its start_date 2030-01-01" in block, "the excerpt ends with the exception's message"
    assert f"full log: {log}" in block
    assert re.search(r"^✗ customer_360_daily +skipped: input DAGs did not succeed", out, re.M)
    assert "did not succeed: brand_monthly_full_refresh" in proc.stderr
    assert "No customer to show: c360.customer is not published." in out
