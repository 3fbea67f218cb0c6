"""How a transform reaches Spark: the ``spark_default`` connection's type decides.

* ``spark_connect`` (the local default, ``sc://127.0.0.1:15002``): the job's ``main(argv)`` runs in the task
  process as a Spark Connect client of a long-lived server, so a transform pays no JVM start-up (~13 s per
  ``spark-submit`` on these machines). A server on a loopback address is this machine's own: it is started on
  first use (``local[*]``, state under ``.state/spark-connect``) and stopped by ``make down``.
* ``spark`` (``local[*]``, ``spark://``, ``yarn``, ``k8s://``): ``spark-submit``, the path to clusters, with
  OpenLineage parent-job information injected by the provider.

Both run the same job file with the same arguments, so a cluster is one connection change away.

A Connect server that dies (or cannot be reached) fails the job within seconds, not after pyspark's
default ~10 minutes of retries per call: see :func:`fail_fast_policy_class` and :func:`run_connect_job`.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from c360 import lake, procs, settings

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_S = 180
# how long a Connect client keeps retrying an unavailable server before the job fails (pyspark: ~10 min/call)
RETRY_BUDGET_S = 20.0


class SparkJobFailed(RuntimeError):
    """The Spark job returned a non-zero status."""


class SparkConnectServerLost(RuntimeError):
    """The Spark Connect server died or could not be reached while a job ran (not an error of the job)."""


def server_dir() -> Path:
    return settings.state_dir() / "spark-connect"


def server_log() -> Path:
    return server_dir() / "server.log"


def pid_file() -> Path:
    # beside the Airflow services' pid files, so `make down` stops the server with them
    return settings.state_dir() / "pids" / "spark-connect.pid"


def server_conf(port: int) -> dict[str, str]:
    """The local server: local[*], bound to loopback only, UTC sessions, heap from C360_SPARK_DRIVER_MEMORY."""
    return {
        "spark.master": os.environ.get("C360_SPARK_CONNECT_MASTER", "local[*]"),
        "spark.app.name": "c360-spark-connect",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": os.environ.get("C360_SPARK_DRIVER_MEMORY", "4g"),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        # input splits of ~size/cores (capped by this): on local[*] big splits let the partial aggregation of
        # a many-key groupBy (orders by customer) shrink what is shuffled; measured 20 s → 15 s at 20M rows
        "spark.sql.files.maxPartitionBytes": "1g",
        "spark.local.dir": str(server_dir() / "tmp"),
        # the lake holds PII: what the server writes there is owner-only (0600 files, 0700 folders); the
        # server also runs with umask 077 (ensure_local_server), for what it writes outside Hadoop
        "spark.hadoop.fs.permissions.umask-mode": "077",
    }


# pyspark marks the process as a Spark Connect client in os.environ; a later spark-submit or classic session
# of the same process (dag.test runs every task in one) would then try to be a Connect client too
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


@contextmanager
def _client_env():
    saved = {k: os.environ.get(k) for k in CONNECT_ENV}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spark_home() -> str:
    """SPARK_HOME, else the pyspark installation (its bin/spark-submit finds its jars without PATH help)."""
    import pyspark

    return os.environ.get("SPARK_HOME") or str(Path(pyspark.__file__).parent)


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def ensure_local_server(port: int) -> bool:
    """Start this machine's Spark Connect server unless something listens on ``port``; True if started.

    A file lock serialises concurrent tasks; the server runs in its own session (process group) so it outlives
    the task; its working folder is ``server_dir()`` (a JVM crash report ``hs_err_pid<pid>.log`` lands there).
    A server recorded in the pid file that no longer answers (it died, or hangs) is stopped first,
    with everything it spawned, and its scratch folder is emptied, so a restart after a crash or a disk-full
    write starts clean and frees what the old process held open. The server runs with umask 077: what it
    writes to a local lake is owner-only.
    """
    if _listening(port):
        return False
    server_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    server_dir().chmod(0o700)  # its log and scratch files can hold row values
    pid_file().parent.mkdir(parents=True, exist_ok=True)
    with (server_dir() / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _listening(port):
            return False
        stop_local_server()  # one recorded but not answering is dead or hung: stop what is left of it
        shutil.rmtree(server_dir() / "tmp", ignore_errors=True)  # a killed JVM leaves its spill files
        log = server_log()
        home = spark_home()
        cmd = [str(Path(home) / "bin" / "spark-submit"), "--class", SERVER_CLASS]
        for key, value in server_conf(port).items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append("spark-internal")
        with log.open("ab") as out:
            env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, umask=lake.OWNER_ONLY_UMASK, cwd=server_dir(),
                                    env={**env, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1"})
        pid_file().write_text(str(proc.pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = _log_tail(20)
                stop_local_server()
                raise RuntimeError(f"Spark Connect server did not start on 127.0.0.1:{port}; {log}:\n{tail}")
            time.sleep(0.5)
        _warm_up(f"sc://127.0.0.1:{port}", proc.pid)
    return True


def _log_tail(lines: int) -> str:
    log = server_log()
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _log_errors(lines: int = 10, scan: int = 400) -> str:
    """The ERROR/exception lines among the log's last ``scan`` lines (at most ``lines``), or why there are none."""
    log = server_log()
    tail = log.read_text(errors="replace").splitlines()[-scan:] if log.exists() else []
    found = [x for x in tail if " ERROR " in x or "Exception" in x or "OutOfMemory" in x][-lines:]
    return "\n".join(found) if found else (
        "(no error in its last lines: a process killed from outside, e.g. by the kernel's OOM killer, logs "
        "nothing; see dmesg)")


def _warm_up(url: str, pid: int) -> None:
    """A small job shaped like the transforms (Parquet out and in, a many-key string groupBy with conditional
    decimal sums, a sort): the first job of a fresh JVM otherwise pays class loading and JIT compilation of
    these paths, measured as ~30% extra on the RFM benchmark."""
    from pyspark.sql import functions as F

    path = (server_dir() / "tmp" / "warm-up").as_uri()
    with _client_env():
        spark = connect_session(url, lambda: procs.alive(pid))
        try:
            rows = spark.range(2_000_000).select(
                F.concat(F.lit("C"), (F.col("id") % 200_000).cast("string")).alias("k"),
                (F.col("id") % 10_000 / 100).cast("decimal(18,2)").alias("amount"),
                F.timestamp_seconds(F.col("id") * 60).cast("timestamp_ntz").alias("ts"))
            rows.write.mode("overwrite").parquet(path)
            back = spark.read.parquet(path)
            recent = F.col("ts") >= F.lit("1970-01-10").cast("timestamp_ntz")
            back.groupBy("k").agg(F.max(F.when(recent, F.col("ts"))), F.count(F.when(recent, F.lit(1))),
                                  F.sum(F.when(recent, F.col("amount")))) \
                .orderBy("k").write.mode("overwrite").format("noop").save()
        finally:
            spark.stop()


def stop_local_server() -> bool:
    """Stop the server ensure_local_server started (its whole process group); True if any of it was running.

    A stale pid file (the server died) is removed; a pid now used by an unrelated process is left alone.
    """
    pid = _recorded_pid()
    if pid is None:
        return False
    running = procs.stop_group(pid) if _is_our_server(pid) else False
    pid_file().unlink(missing_ok=True)
    return running


def _recorded_pid() -> int | None:
    try:
        return int(pid_file().read_text())
    except (FileNotFoundError, ValueError):
        return None


def _is_our_server(pid: int) -> bool:
    """False only when ``pid`` is alive and is provably something else (Linux /proc): after a reboot the pid
    file may name an unrelated process. A dead leader's group (what it spawned) is still ours to stop."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone, or no /proc (macOS): nothing to tell it apart
        return True
    return not cmdline or SERVER_CLASS.encode() in cmdline


@functools.cache
def fail_fast_policy_class() -> type:
    """``FailFastRetryPolicy``: what pyspark's ``DefaultPolicy`` retries (gRPC UNAVAILABLE, a preempted
    cursor, an error carrying RetryInfo), with backoff up to 4 s, but for at most ``budget_s`` of one outage,
    and not at all once ``server_alive()`` says the server's process is gone.

    pyspark's default retries each call ~10 minutes; a job that loses its server makes three such calls (the
    running action, ``unpersist``, ``release_session`` in ``stop``), so the task hung ~30 minutes. An outage
    is the run of retryable errors less than ``STREAK_GAP_S`` apart: once it is older than the budget, every
    call fails at once, so the action, the cleanup and the release together take about ``budget_s``. Errors
    with more than ``STREAK_GAP_S`` of quiet between them are separate outages (a blip, then recovery). The
    policy object is shared by the client's calls and its release threads, hence the lock. Built on first
    use (a function, not a module-level class): importing pyspark's Connect client costs DAG parsing time.
    """
    from pyspark.sql.connect.client.retries import DefaultPolicy

    class FailFastRetryPolicy(DefaultPolicy):
        STREAK_GAP_S = 10.0

        def __init__(self, server_alive: Callable[[], bool] | None = None,
                     budget_s: float = RETRY_BUDGET_S) -> None:
            super().__init__(max_retries=None, initial_backoff=200, backoff_multiplier=2.0, max_backoff=4000,
                             jitter=500, min_jitter_threshold=2000, max_server_retry_delay=4000)
            self._server_alive = server_alive
            self._budget_s = budget_s
            self._lock = threading.Lock()
            self._outage_start: float | None = None
            self._last_error = 0.0

        def can_retry(self, e: BaseException) -> bool:
            if not super().can_retry(e):
                return False
            if self._server_alive is not None and not self._server_alive():
                return False
            with self._lock:
                now = time.monotonic()
                if self._outage_start is None or now - self._last_error > self.STREAK_GAP_S:
                    self._outage_start = now
                self._last_error = now
                return now - self._outage_start < self._budget_s

    return FailFastRetryPolicy


def connect_session(url: str, server_alive: Callable[[], bool] | None = None) -> ConnectSession:
    """A new Spark Connect session of ``url`` that fails fast when the server goes away
    (:func:`fail_fast_policy_class`), made this process's default session.

    A job's ``SparkSession.builder.remote(url).getOrCreate()`` then returns it (with the job's settings
    applied), so jobs need no change. The caller must ``stop()`` it (idempotent), so the next job gets a
    fresh one; an active session left behind by an earlier job is stopped here. The policy is set through the
    public ``SparkConnectClient.set_retry_policies``: the session builder has no retry option.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    stale = ConnectSession.getActiveSession()
    if stale is not None:
        stale.stop()
    # pyspark's entry point, not the Connect builder's create(): it also marks the process as a Connect client,
    # which pyspark.sql.functions needs (the caller restores that marking: _client_env)
    spark = SparkSession.builder.remote(url).getOrCreate()
    spark.client.set_retry_policies([fail_fast_policy_class()(server_alive)])
    return spark


def load_job(application: str):
    """Import a job file (``include/spark/*.py``) as a module, as spark-submit would run it: with its folder
    importable (spark-submit runs it as a script, whose folder is on ``sys.path``), for the modules the jobs
    share (``jobkit``)."""
    path = Path(application)
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"c360_spark_job_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"Spark job {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_connect_job(application: str, args: list[str], url: str, conf: dict[str, str] | None = None) -> None:
    """Run a job's ``main(argv)`` as a Spark Connect client of ``url`` (session settings ``conf``); start the
    local server if needed.

    If the server goes away while the job runs, this raises :class:`SparkConnectServerLost` naming the server
    and, for the local one, its log: at once when the local server's process is gone, after ``RETRY_BUDGET_S``
    seconds of retries when a server does not answer. The next call starts a new local server. Any other
    failure of the job is raised as the job raised it.
    """
    parsed = urlparse(url)
    local = parsed.hostname in LOOPBACK
    port = parsed.port or 15002
    if local:
        ensure_local_server(port)
    pid = _recorded_pid() if local else None
    alive = (lambda: procs.alive(pid)) if pid is not None else None
    conf_args = [a for k, v in (conf or {}).items() for a in ("--conf", f"{k}={v}")]
    with _client_env():
        spark = connect_session(url, alive)
        try:
            rc = load_job(application).main([*args, "--remote", url, *conf_args])
        except Exception as e:
            lost = _server_lost(application, url, local, port, pid, e)
            if lost is None:
                raise
            raise lost from e
        finally:
            spark.stop()
    if rc:
        raise _server_lost(application, url, local, port, pid, None) or SparkJobFailed(
            f"{application} exited with status {rc}")


def _server_lost(application: str, url: str, local: bool, port: int, pid: int | None,
                 error: BaseException | None) -> SparkConnectServerLost | None:
    """The error to raise when the job failed because its server is gone; None if the server is fine."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    if local:
        if _listening(port) and (pid is None or procs.alive(pid)):
            return None
        return SparkConnectServerLost(
            f"the Spark Connect server at {url}{f' (pid {pid})' if pid else ''} died while {Path(application).name} ran; its log is "
            f"{server_log()} (a JVM crash also leaves {server_dir()}/hs_err_pid{pid}.log). The next run of the "
            f"task starts a new server. Errors at the end of its log:\n{_log_errors()}")
    import grpc

    if isinstance(error, SparkConnectGrpcException) and error.getGrpcStatusCode() == grpc.StatusCode.UNAVAILABLE:
        return SparkConnectServerLost(
            f"the Spark Connect server at {url} is unreachable (gRPC UNAVAILABLE after retrying "
            f"{RETRY_BUDGET_S:.0f} s) while {Path(application).name} ran: check that the server runs and "
            f"its own log, and the connection spark_default")
    return None


class SparkJobOperator(SparkSubmitOperator):
    """SparkSubmitOperator that runs the job over Spark Connect when ``conn_id`` is a ``spark_connect``
    connection; any other connection type is a plain ``spark-submit``. Either way the job gets the OpenLineage
    parent job (``spark.openlineage.parent*``), so Spark-side events link to this task, and the task's own
    lineage names the lake paths the job read and wrote (from its arguments)."""

    # job arguments naming what it reads and writes
    INPUT_ARGS = ("--raw", "--lookup")
    OUTPUT_ARGS = ("--stage", "--quarantine", "--out")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("openlineage_inject_parent_job_info", True)
        super().__init__(**kwargs)

    def execute(self, context: Any) -> None:
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        hook = SparkConnectHook(self._conn_id)
        if hook.get_connection(self._conn_id).conn_type != SparkConnectHook.conn_type:
            return super().execute(context)  # spark-submit; the provider injects the parent job
        url = hook.get_connection_url()
        self.log.info("Running %s over Spark Connect at %s", self.application, url)
        run_connect_job(self.application, [str(a) for a in self.application_args or []], url,
                        parent_job_conf(context))
        return None

    def _arg_uris(self, names: tuple[str, ...]) -> list[str]:
        args = [str(a) for a in self.application_args or []]
        uris = [args[i + 1] for i, a in enumerate(args[:-1]) if a in names and a != "--inputs"]
        if "--inputs" in names and "--inputs" in args:
            import base64
            import json

            uris += json.loads(base64.b64decode(args[args.index("--inputs") + 1])).values()
        return uris

    def get_openlineage_facets_on_complete(self, task_instance: Any):
        from airflow.providers.openlineage.extractors.base import OperatorLineage

        from c360 import lineage

        return OperatorLineage(
            inputs=[lineage.lake_path("in", u) for u in self._arg_uris((*self.INPUT_ARGS, "--inputs"))],
            outputs=[lineage.lake_path("out", u) for u in self._arg_uris(self.OUTPUT_ARGS)],
        )


def parent_job_conf(context: Any) -> dict[str, str]:
    """The Spark properties the OpenLineage provider injects into spark-submit, for a Connect session."""
    try:
        from airflow.providers.openlineage.utils.spark import _get_parent_job_information_as_spark_properties
    except ImportError:  # the provider is optional for running a job
        return {}
    return _get_parent_job_information_as_spark_properties(context) if context else {}
