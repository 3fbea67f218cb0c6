"""The three ways a transform reaches Spark give the same output, chosen by the connection alone:
``spark-submit`` to a real standalone cluster (a master and one worker on 127.0.0.1, started from the pyspark
installation), ``spark-submit`` in local mode, and the default ``spark_connect`` connection (the job as a Spark
Connect client of the local server, started on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import free_port

from c360 import settings
from c360.registry import load_registry

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Master + one worker (1 core, 1 GiB); yields the master URL and the master's web UI port."""
    home = _spark_home()
    logs = tmp_path_factory.mktemp("spark-cluster")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(logs / "work")}
    spark_class = str(home / "bin" / "spark-class")
    master_url = f"spark://127.0.0.1:{port}"
    procs = [
        subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                          "--port", str(port), "--webui-port", str(ui)],
                         env=env, stdout=(logs / "master.log").open("wb"), stderr=subprocess.STDOUT),
    ]
    try:
        _wait_json(f"http://127.0.0.1:{ui}/json/", lambda s: s.get("status") == "ALIVE", logs / "master.log")
        procs.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--webui-port", str(worker_ui), "--cores", "1", "--memory", "1g"],
            env=env, stdout=(logs / "worker.log").open("wb"), stderr=subprocess.STDOUT))
        _wait_json(f"http://127.0.0.1:{ui}/json/", lambda s: s.get("aliveworkers", 0) >= 1, logs / "worker.log")
        yield master_url, ui
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_json(url: str, ok, log: Path, timeout: float = 90):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if ok(json.loads(resp.read())):
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not ready after {timeout} s; log:\n{log.read_text()[-3000:]}")


def _raw_customers(path: Path, n: int = 300) -> None:
    """A raw partition as the extract writes it: Parquet, every column the source's text (NULL where absent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds = load_registry()["customer"]
    rows = []
    for i in range(n):
        values: dict = {c: None for c in ds.column_names}
        values.update(customer_id=f"C{i % 250:05d}", first_name=f"Ann{i}", gender="F", age=str(20 + i % 60),
                      no_of_children="x" if i == 7 else "1",  # one type violation
                      updated_at=f"2026-11-20 {i % 24:02d}:00:00", registration_date="2024-01-01 00:00:00")
        rows.append(values)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, pa.schema([(c, pa.string()) for c in ds.column_names])),
                   path / "part-00000.parquet")


def _submit(conn_id: str, raw: Path, out: Path, conf: dict) -> None:
    from c360.dag_factory import SPARK_CONF, stage_spec
    from c360.spark_runner import SparkJobOperator

    ds = load_registry()["customer"]
    stage_with_spark = SparkJobOperator(
        task_id="stage_with_spark", conn_id=conn_id, application=str(settings.SPARK_DIR / "stage_job.py"),
        py_files=str(settings.SPARK_DIR / "jobkit.py"),  # as the DAG factory ships it
        name="c360_cluster_test", conf={**SPARK_CONF, **conf},
        openlineage_inject_parent_job_info=False,  # executed outside a task: there is no parent job
        application_args=["--dataset", ds.name, "--spec", stage_spec(ds), "--raw", raw.as_uri(),
                          "--stage", (out / "stage").as_uri(), "--quarantine", (out / "quarantine").as_uri()],
    )
    stage_with_spark.execute(context={})


def _rows(path: Path) -> list[tuple]:
    import pyarrow.dataset as pads

    table = pads.dataset(str(path), format="parquet").to_table()
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


def test_stage_transform_on_a_standalone_cluster_matches_local_mode_and_spark_connect(cluster, tmp_path,
                                                                                     monkeypatch):
    from c360 import spark_runner

    master_url, ui = cluster
    raw = tmp_path / "raw"
    _raw_customers(raw)
    host, port = master_url.rsplit(":", 1)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CLUSTER", json.dumps({"conn_type": "spark", "host": host, "port": int(port)}))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_LOCAL", json.dumps({"conn_type": "spark", "host": "local[*]"}))
    # executors on the worker reach the driver on loopback
    cluster_conf = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                    "spark.executor.memory": "512m", "spark.driver.memory": "1g"}
    # Connect first: pyspark marks its process as a Connect client, which must not leak into the submits
    _submit(settings.SPARK_CONN_ID, raw, tmp_path / "connect", {})  # the default: Spark Connect
    _submit("spark_cluster", raw, tmp_path / "cluster", cluster_conf)
    _submit("spark_local", raw, tmp_path / "local", {})

    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as resp:
        apps = json.loads(resp.read())["completedapps"]
    assert [a["name"] for a in apps] == ["c360_stage_customer"]  # the job really ran on the cluster
    # ... and the default connection ran it on this session's Spark Connect server
    assert spark_runner._listening(settings.spark_connect_port())
    assert spark_runner.pid_file().exists()
    for layer in ("stage", "quarantine"):
        assert _rows(tmp_path / "cluster" / layer) == _rows(tmp_path / "local" / layer), layer
        assert _rows(tmp_path / "connect" / layer) == _rows(tmp_path / "local" / layer), layer
    stage, quarantine = _rows(tmp_path / "cluster" / "stage"), _rows(tmp_path / "cluster" / "quarantine")
    # 300 rows, 250 ids; row 7 is mistyped (its id comes back in row 257): 250 staged, 1 bad + 49 superseded
    assert len(stage) == 250 and len(quarantine) == 50


def test_a_failing_job_over_spark_connect_fails_the_task(tmp_path):
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException, match="PATH_NOT_FOUND"):
        _submit(settings.SPARK_CONN_ID, tmp_path / "no-such-raw", tmp_path / "out", {})


def test_a_rerun_over_spark_connect_reads_the_new_files_not_a_cache_of_the_last_run(tmp_path):
    """A Connect server shares one cache across sessions and keeps it after a job; a job that left its
    cached raw read behind would serve a rerun (new files, same path) the previous run's rows."""
    raw = tmp_path / "raw"
    _raw_customers(raw)
    _submit(settings.SPARK_CONN_ID, raw, tmp_path / "first", {})
    _raw_customers(raw, n=100)  # the rerun's extract, at the same path: the first 100 rows
    _submit(settings.SPARK_CONN_ID, raw, tmp_path / "second", {})
    assert len(_rows(tmp_path / "first" / "stage")) == 250
    assert len(_rows(tmp_path / "second" / "stage")) == 99  # 100 rows, row 7 mistyped


def test_a_spark_connect_session_gets_the_openlineage_parent_job(tmp_path, capsys):
    """spark-submit gets spark.openlineage.parent* as --conf from the provider; a Connect session gets them as
    session settings, so a Spark-side OpenLineage listener links its events to the Airflow task."""
    from c360.dag_factory import stage_spec
    from c360.spark_runner import run_connect_job

    raw = tmp_path / "raw"
    _raw_customers(raw)
    ds = load_registry()["customer"]
    args = ["--dataset", ds.name, "--spec", stage_spec(ds), "--raw", raw.as_uri(),
            "--stage", (tmp_path / "stage").as_uri(), "--quarantine", (tmp_path / "q").as_uri()]
    url = f"sc://127.0.0.1:{settings.spark_connect_port()}"
    run_connect_job(str(settings.SPARK_DIR / "stage_job.py"), args, url,
                    {"spark.openlineage.parentJobName": "customer_daily.stage_with_spark",
                     "spark.openlineage.parentJobNamespace": "c360"})
    line = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")][-1]
    assert line["openlineage_parent_job"] == "customer_daily.stage_with_spark"
