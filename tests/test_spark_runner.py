"""The Spark Connect path imports a job file as spark-submit runs it: the jobs' shared module comes along."""

from __future__ import annotations

import os
import subprocess
import sys

from c360 import settings


def test_load_job_imports_what_the_jobs_share_without_include_spark_on_the_path():
    code = ("import sys; from c360 import settings, spark_runner\n"
            "assert not any(p.rstrip('/').endswith('include/spark') for p in sys.path), sys.path\n"
            "for name in ('stage_job.py', 'web_analytics_job.py', 'customer360_job.py'):\n"
            "    job = spark_runner.load_job(str(settings.SPARK_DIR / name))\n"
            "    print(name, callable(job.main), job.jobkit.__file__)\n")
    env = {**os.environ, "PYTHONPATH": str(settings.INCLUDE_DIR)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.PROJECT_DIR, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == [f"{name} True {settings.SPARK_DIR / 'jobkit.py'}"
                   for name in ("stage_job.py", "web_analytics_job.py", "customer360_job.py")]
