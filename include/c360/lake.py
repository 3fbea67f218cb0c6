"""The lake: landing → raw → stage (+ quarantine) → analytics, on object storage.

Every path goes through here. The root is ``C360_LAKE_URI`` (``file:///…/.state/lake`` by default,
``s3://bucket/prefix`` by configuration, credentials from the ``aws_default`` connection). Partitions are
named by dataset and data interval, so a rerun or backfill of an interval overwrites exactly its own
partition.

A local lake holds raw PII, so everything c360 creates in it is owner-only (files 0600, folders 0700): see
:func:`owner_only`. On S3, objects are private unless the bucket says otherwise (README, Configuration).
"""

from __future__ import annotations

import os
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


OWNER_ONLY_UMASK = 0o077


def owner_only() -> None:
    """From now on, every file and folder this process and the processes it starts create is owner-only.

    It sets the process umask to include 0o077 (files 0600, folders 0700) and keeps it: every writer of the
    local lake (fsspec's local files behind ``ObjectStoragePath``, pyarrow, a ``spark-submit`` child) creates
    files with ``0666 & ~umask``, so the umask is the one setting that covers them all, writers added later
    included, with no moment in which a file is readable by others (a chmod after writing has one). It is
    process-wide and never restored: restoring would race with other threads still writing. :func:`path`
    calls it for every ``file://`` URI, so a caller that reaches the lake through this module has nothing to
    do; a process that writes a local lake by other means must call it first. The Spark Connect server gets
    the same umask and ``fs.permissions.umask-mode`` from ``c360.spark_runner``.
    """
    old = os.umask(OWNER_ONLY_UMASK)
    os.umask(old | OWNER_ONLY_UMASK)


def is_local(any_uri: str) -> bool:
    """A ``file://`` URI (the default lake); anything else is object storage."""
    return any_uri.startswith("file:")


def path(any_uri: str) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if is_local(any_uri):
        owner_only()
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
    """Empty a partition before it is rewritten: a rerun leaves no file of an earlier attempt behind.

    On a local lake the partition and the folders above it up to the lake root are made 0700, so a lake
    created before files were owner-only (0755 folders, 0644 files) is closed at its root on the next write.
    """
    p = path(any_uri)
    if p.exists():
        p.rmdir(recursive=True) if p.is_dir() else p.unlink()
    p.mkdir(parents=True, exist_ok=True)
    if is_local(any_uri):
        _close_folders(local_path(any_uri))
    return p


def _close_folders(partition) -> None:
    """chmod 0700 ``partition`` and its parents inside the lake root (the root included), those we own."""
    root = local_path(settings.lake_uri())
    folders = [partition, *partition.parents]
    inside = folders[: folders.index(root) + 1] if root in folders else [partition]
    for folder in inside:
        st = folder.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            folder.chmod(0o700)
