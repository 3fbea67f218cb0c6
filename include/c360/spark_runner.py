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
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from c360 import procs, settings

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
        home = spark_home()
        cmd = [str(Path(home) / "bin" / "spark-submit"), "--class", SERVER_CLASS]
        for key, value in server_conf(port).items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append("spark-internal")
        with log.open("ab") as out:
            env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**env, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1"})
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

    path = (server_dir() / "tmp" / "warm-up").as_uri()
    with _client_env():
        spark = SparkSession.builder.remote(url).getOrCreate()
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
    running = procs.stop_group(int(path.read_text()))
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


def run_connect_job(application: str, args: list[str], url: str, conf: dict[str, str] | None = None) -> None:
    """Run a job's ``main(argv)`` as a Spark Connect client of ``url`` (session settings ``conf``); start the
    local server if needed."""
    parsed = urlparse(url)
    if parsed.hostname in LOOPBACK:
        ensure_local_server(parsed.port or 15002)
    conf_args = [a for k, v in (conf or {}).items() for a in ("--conf", f"{k}={v}")]
    with _client_env():
        rc = load_job(application).main([*args, "--remote", url, *conf_args])
    if rc:
        raise SparkJobFailed(f"{application} exited with status {rc}")


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
