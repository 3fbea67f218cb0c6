"""A trivial Spark job (one row counted): what a transform costs before it does any work."""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--remote", help="Spark Connect URL; default: the spark-submit session")
    args = parser.parse_args(argv)
    builder = SparkSession.builder.remote(args.remote) if args.remote else SparkSession.builder.appName("noop")
    spark = builder.getOrCreate()
    try:
        assert spark.range(1).count() == 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
