"""The lake: landing → raw → stage (+ quarantine) → analytics, on object storage.

Every path goes through here. The root is ``C360_LAKE_URI`` (``file:///…/.state/lake`` by default,
``s3://bucket/prefix`` by configuration, credentials from the ``aws_default`` connection). Partitions are
named by dataset and data interval, so a rerun or backfill of an interval overwrites exactly its own
partition.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from c360 import settings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LAYERS = ("raw", "stage", "quarantine", "analytics")


def interval_key(start: datetime) -> str:
    """Partition key of a data interval, by its start: ``2026-11-20T0000``."""
    return start.strftime("%Y-%m-%dT%H%M")


def uri(layer: str, dataset: str, start: datetime | None = None) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown lake layer {layer!r}; expected one of {LAYERS}")
    base = f"{settings.lake_uri()}/{layer}/{dataset}"
    return base if start is None else f"{base}/interval={interval_key(start)}"


def path(any_uri: str) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    conn_id = "aws_default" if any_uri.startswith("s3://") else None
    return ObjectStoragePath(any_uri, conn_id=conn_id)


def spark_uri(any_uri: str) -> str:
    """The same location as Spark's Hadoop filesystem names it (s3 is s3a there)."""
    return "s3a://" + any_uri[len("s3://") :] if any_uri.startswith("s3://") else any_uri


def local_path(any_uri: str):
    """A local ``Path`` for a ``file://`` URI (for tools that need one, e.g. pyarrow on the default lake)."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    parsed = urlparse(any_uri)
    if parsed.scheme not in ("file", ""):
        raise ValueError(f"{any_uri} is not a local path")
    return Path(unquote(parsed.path))


def replace_partition(any_uri: str) -> ObjectStoragePath:
    """Empty a partition before it is rewritten: a rerun leaves no file of an earlier attempt behind."""
    p = path(any_uri)
    if p.exists():
        p.rmdir(recursive=True) if p.is_dir() else p.unlink()
    p.mkdir(parents=True, exist_ok=True)
    return p
