"""How a transform reaches Spark: the ``spark_default`` connection's type decides.

* ``spark_connect`` (the local default, ``sc://127.0.0.1:15002``): the job's ``main(argv)`` runs in the task
  process as a Spark Connect client of a long-lived server, so a transform pays no JVM start-up (~13 s per
  ``spark-submit`` on these machines). A server on a loopback address is this machine's own: it is started on
  first use (``local[*]``, state under ``.state/spark-connect``) and stopped by ``make down``.
* ``spark`` (``local[*]``, ``spark://``, ``yarn``, ``k8s://``): ``spark-submit``, the path to clusters, with
  OpenLineage parent-job information injected by the provider.

Both run the same job file with the same arguments, so a cluster is one connection change away.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from c360 import settings

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_S = 180


class SparkJobFailed(RuntimeError):
    """The Spark job returned a non-zero status."""


def server_dir() -> Path:
    return settings.state_dir() / "spark-connect"


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
    }


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def ensure_local_server(port: int) -> bool:
    """Start this machine's Spark Connect server unless something listens on ``port``; True if started.

    A file lock serialises concurrent tasks; the server runs in its own session so it outlives the task.
    """
    if _listening(port):
        return False
    server_dir().mkdir(parents=True, exist_ok=True)
    pid_file().parent.mkdir(parents=True, exist_ok=True)
    with (server_dir() / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _listening(port):
            return False
        log = server_dir() / "server.log"
        import pyspark

        home = os.environ.get("SPARK_HOME") or str(Path(pyspark.__file__).parent)
        cmd = [str(Path(home) / "bin" / "spark-submit"), "--class", SERVER_CLASS]
        for key, value in server_conf(port).items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append("spark-internal")
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1"})
        pid_file().write_text(str(proc.pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").splitlines()[-20:]
                stop_local_server()
                raise RuntimeError(f"Spark Connect server did not start on 127.0.0.1:{port}; {log}:\n"
                                   + "\n".join(tail))
            time.sleep(0.5)
        _warm_up(f"sc://127.0.0.1:{port}")
    return True


def _warm_up(url: str) -> None:
    """A small job shaped like the transforms (Parquet out and in, a many-key string groupBy with conditional
    decimal sums, a sort): the first job of a fresh JVM otherwise pays class loading and JIT compilation of
    these paths, measured as ~30% extra on the RFM benchmark."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.remote(url).getOrCreate()
    path = (server_dir() / "tmp" / "warm-up").as_uri()
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
    """Stop the server ensure_local_server started (its whole process group); True if one was running."""
    path = pid_file()
    if not path.exists():
        return False
    pid = int(path.read_text())
    running = _alive(pid)
    if running:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(60):
            if not _alive(pid):
                break
            time.sleep(0.5)
        else:
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return running


def load_job(application: str):
    """Import a job file (``include/spark/*.py``) as a module, as spark-submit would run it."""
    path = Path(application)
    spec = importlib.util.spec_from_file_location(f"c360_spark_job_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"Spark job {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_connect_job(application: str, args: list[str], url: str) -> None:
    """Run a job's ``main(argv)`` as a Spark Connect client of ``url``; start the local server if needed."""
    parsed = urlparse(url)
    if parsed.hostname in LOOPBACK:
        ensure_local_server(parsed.port or 15002)
    rc = load_job(application).main([*args, "--remote", url])
    if rc:
        raise SparkJobFailed(f"{application} exited with status {rc}")


class SparkJobOperator(SparkSubmitOperator):
    """SparkSubmitOperator that runs the job over Spark Connect when ``conn_id`` is a ``spark_connect``
    connection; any other connection type is a plain ``spark-submit``."""

    def execute(self, context: Any) -> None:
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        hook = SparkConnectHook(self._conn_id)
        if hook.get_connection(self._conn_id).conn_type != SparkConnectHook.conn_type:
            return super().execute(context)
        url = hook.get_connection_url()
        self.log.info("Running %s over Spark Connect at %s", self.application, url)
        run_connect_job(self.application, [str(a) for a in self.application_args or []], url)
        return None
