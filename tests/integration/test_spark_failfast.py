"""A Spark Connect server that goes away fails the job fast, with a message naming the server and its log, and
the next job starts a new server (the pyspark client's own retries used to hang a task ~30 minutes).

Real servers, real processes: this session's local server is SIGKILLed (its whole process group) while a
job writes; an address where nothing listens stands for an unreachable remote server.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import free_port

from c360 import procs, settings, spark_runner

pytestmark = pytest.mark.integration

# each row sleeps in the JVM (reflect → Thread.sleep): 400 rows × 100 ms over 2 partitions ≈ 20 s of work,
# cached, written, then unpersisted: the three calls that each retried ~10 minutes against a dead server
SLOW_JOB = textwrap.dedent('''
    import argparse
    from pathlib import Path

    from pyspark.sql import SparkSession


    def main(argv):
        p = argparse.ArgumentParser()
        p.add_argument("--out", required=True)
        p.add_argument("--started", required=True)
        p.add_argument("--rows", type=int, default=400)
        p.add_argument("--sleep-ms", type=int, default=100)
        p.add_argument("--remote")
        p.add_argument("--conf", action="append", default=[])
        a = p.parse_args(argv)
        spark = SparkSession.builder.remote(a.remote).config("spark.sql.session.timeZone", "UTC").getOrCreate()
        try:
            rows = spark.range(0, a.rows, 1, 2).selectExpr(
                "id", f"reflect('java.lang.Thread', 'sleep', cast({a.sleep_ms} as bigint)) as slept").cache()
            try:
                Path(a.started).touch()
                rows.write.mode("overwrite").parquet(a.out)
            finally:
                rows.unpersist()
        finally:
            spark.stop()
        return 0
''')

DETECT_WITHIN_S = 60  # the bound: a dead server fails the task within a minute


def _url() -> str:
    return f"sc://127.0.0.1:{settings.spark_connect_port()}"


@pytest.fixture
def slow_job(tmp_path) -> Path:
    job = tmp_path / "slow_job.py"
    job.write_text(SLOW_JOB)
    return job


def _run_in_thread(job: Path, args: list[str], url: str) -> tuple[threading.Thread, dict]:
    """run_connect_job in a thread, so a regression (the client retrying for minutes) fails the test instead of
    hanging it; the result dict gets ``error`` and ``ended`` (monotonic)."""
    result: dict = {}

    def target() -> None:
        try:
            spark_runner.run_connect_job(str(job), args, url)
        except BaseException as e:  # noqa: BLE001 - inspected by the test
            result["error"] = e
        result["ended"] = time.monotonic()

    thread = threading.Thread(target=target, name="connect-job", daemon=True)
    thread.start()
    return thread, result


def _wait_for(path: Path, timeout_s: float, thread: threading.Thread, result: dict) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert thread.is_alive(), f"the job ended before its write started: {result.get('error')!r}"
        assert time.monotonic() < deadline, f"the job did not reach its write within {timeout_s} s"
        time.sleep(0.2)


def test_a_killed_server_fails_the_job_within_a_minute_and_the_next_job_restarts_it(slow_job, tmp_path):
    url = _url()
    spark_runner.run_connect_job(str(slow_job), ["--out", (tmp_path / "warm").as_uri(), "--started",
                                                 str(tmp_path / "warm.started"), "--rows", "4", "--sleep-ms", "1"],
                                 url)  # the session's server is up (started here if no other test did)
    pid = int(spark_runner.pid_file().read_text())
    assert procs.alive(pid)

    started = tmp_path / "started"
    thread, result = _run_in_thread(slow_job, ["--out", (tmp_path / "out").as_uri(), "--started", str(started)],
                                    url)
    _wait_for(started, 60, thread, result)
    time.sleep(2)  # the write is running on the server
    assert thread.is_alive(), f"the slow job ended before the kill: {result}"
    os.killpg(pid, signal.SIGKILL)  # the server and everything it spawned, as the OOM killer or a crash would
    killed = time.monotonic()
    thread.join(DETECT_WITHIN_S + 30)

    assert not thread.is_alive(), f"run_connect_job still hangs {DETECT_WITHIN_S + 30} s after the server died"
    took = result["ended"] - killed
    print(f"run_connect_job failed {took:.1f} s after the server was killed")
    assert took < DETECT_WITHIN_S, f"the dead server was detected after {took:.0f} s"
    error = result.get("error")
    assert isinstance(error, spark_runner.SparkConnectServerLost), repr(error)
    message = str(error)
    assert f"Spark Connect server at {url} (pid {pid}) died" in message
    assert str(spark_runner.server_log()) in message and "next run" in message
    deadline = time.monotonic() + 10  # the kernel may still be tearing the JVM down
    while procs.group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procs.group_alive(pid)
    assert spark_runner.pid_file().read_text() == str(pid)  # stale: names the dead server

    # the retry: the next job starts a new server (the stale pid file is replaced) and succeeds
    spark_runner.run_connect_job(str(slow_job), ["--out", (tmp_path / "again").as_uri(), "--started",
                                                 str(tmp_path / "again.started"), "--rows", "4", "--sleep-ms", "1"],
                                 url)
    new_pid = int(spark_runner.pid_file().read_text())
    assert new_pid != pid and procs.alive(new_pid)
    assert list((tmp_path / "again").glob("part-*.parquet")), "the rerun wrote nothing"


def test_an_unreachable_server_fails_the_job_after_the_retry_budget(slow_job, tmp_path):
    """127.0.0.2 is not one of the runner's loopback names, so it is treated as a remote server: no local
    server is started, the client retries for RETRY_BUDGET_S, then the job fails naming the address."""
    url = f"sc://127.0.0.2:{free_port('127.0.0.2')}"  # bound then closed: nothing listens there
    t0 = time.monotonic()
    thread, result = _run_in_thread(slow_job, ["--out", (tmp_path / "out").as_uri(), "--started",
                                               str(tmp_path / "started")], url)
    thread.join(DETECT_WITHIN_S + 30)
    assert not thread.is_alive(), f"run_connect_job still retries {DETECT_WITHIN_S + 30} s later"
    took = result["ended"] - t0
    error = result.get("error")
    assert isinstance(error, spark_runner.SparkConnectServerLost), repr(error)
    assert f"Spark Connect server at {url} is unreachable" in str(error)
    # it did retry (a blip is survived), for about the budget, not pyspark's ~10 minutes per call
    assert spark_runner.RETRY_BUDGET_S - 1 <= took < DETECT_WITHIN_S, f"failed after {took:.0f} s"
