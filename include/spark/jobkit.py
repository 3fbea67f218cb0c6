"""What the Spark jobs of this folder share: the session they compute in and the arguments that choose it.

A job runs two ways with the same arguments (``c360.spark_runner``): under ``spark-submit`` in its session, or
as a Spark Connect client (``--remote sc://…``, session settings as ``--conf key=value``) whose ``main(argv)``
the task calls. ``spark-submit`` ships this file with the job (``py_files`` in ``c360.dag_factory``); on the
Connect path ``c360.spark_runner.load_job`` puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from contextlib import contextmanager

from pyspark.sql import SparkSession


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A job's argument parser, described by the first paragraph of ``doc`` (its docstring), with the session's
    arguments ``--remote`` and ``--conf``; the job adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--remote", help="Spark Connect URL (sc://host:port); default: the spark-submit session")
    parser.add_argument("--conf", action="append", default=[], help="key=value for a Spark Connect session")
    return parser


def session(app_name: str, remote: str | None, conf: list[str] | None = None) -> SparkSession:
    """The spark-submit session, or a Spark Connect client session with ``key=value`` settings (the
    OpenLineage parent job, which spark-submit gets as --conf); jobs compute in UTC either way."""
    builder = SparkSession.builder.remote(remote) if remote else SparkSession.builder.appName(app_name)
    for key, _, value in (c.partition("=") for c in conf or []):
        builder = builder.config(key, value)
    return builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()


@contextmanager
def job_session(app_name: str, args: argparse.Namespace) -> Generator[SparkSession, None, None]:
    """:func:`session` as the job's ``--remote`` and ``--conf`` ask, stopped when the job ends (an error too)."""
    spark = session(app_name, args.remote, args.conf)
    try:
        yield spark
    finally:
        spark.stop()
