"""PostgreSQL's CSV dialect read exactly: a ``COPY … TO STDOUT (FORMAT csv)`` stream into Parquet files.

PostgreSQL writes CSV with ``"`` as quote and escape (a quote inside a value is doubled), values holding a
delimiter, quote, CR or LF quoted (so a value may span lines), backslashes as plain characters, NULL as an
unquoted empty field and the empty string as ``""``. Arrow's CSV reader is configured for exactly that
(``newlines_in_values``, ``double_quote``, no escape character, a quoted empty field is a string, not NULL),
so every value PostgreSQL can hold comes back byte for byte, including line breaks, quotes and backslashes.

libpq hands a COPY out one whole row per message, so the stream is cut into blocks at row boundaries; blocks
are parsed and written (one Parquet file each) on worker threads while the next block is read (Arrow releases
the GIL), and at most a few blocks are held in memory. Several files also let Spark read them in parallel.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

BLOCK_BYTES = 64 * 2**20  # of CSV per block (and Parquet file): ~0.5-1M rows of the widest datasets


def session_settings(conn: psycopg.Connection) -> None:
    """Render values the way the readers expect, whatever the server's defaults: ISO dates, exact floats."""
    conn.execute("set datestyle = 'ISO, YMD'; set intervalstyle = 'iso_8601'; set extra_float_digits = 1")


def _parse(block: bytes, schema: pa.Schema, header: bool) -> pa.Table:
    import io

    import pyarrow.csv as pacsv

    if not block:
        return schema.empty_table()
    return pacsv.read_csv(
        io.BytesIO(block),
        read_options=pacsv.ReadOptions(column_names=schema.names, skip_rows=1 if header else 0,
                                       block_size=8 * 2**20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, double_quote=True, escape_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False,
            null_values=[""], true_values=["t"], false_values=["f"]),  # t/f: PostgreSQL's booleans
    )


def copy_to_parquet(conn: psycopg.Connection, query: Any, params: dict | None, schema: pa.Schema,
                    folder: ObjectStoragePath, block_bytes: int = BLOCK_BYTES) -> int:
    """Run ``query`` (``copy (…) to stdout with (format csv, header true)``) and write its rows with ``schema``
    as Parquet files ``part-NNNNN.parquet`` into the (empty) ``folder``; return the rows written.

    Columns are read by position as ``schema`` names them (the header line is skipped, not trusted). A value
    that does not convert to its column's type fails with Arrow's message naming the column. An empty result
    still writes one file, so a reader finds the schema.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    def write(n: int, block: bytes) -> int:
        table = _parse(block, schema, header=n == 0)
        with (folder / f"part-{n:05d}.parquet").open("wb") as out:
            pq.write_table(table, out, compression="snappy", row_group_size=256_000)
        return table.num_rows

    workers = max(1, min(4, os.cpu_count() or 1))
    pending, rows, n = [], 0, 0
    with ThreadPoolExecutor(workers, thread_name_prefix="pgcsv") as pool, conn.cursor() as cur, \
            cur.copy(query, params) as copy:
        parts: list[bytes] = []
        size = 0
        for chunk in copy:  # one row (the header first) per chunk
            parts.append(bytes(chunk))
            size += len(chunk)
            if size >= block_bytes:
                pending.append(pool.submit(write, n, b"".join(parts)))
                parts, size, n = [], 0, n + 1
                while len(pending) > workers:  # bounded memory: wait for the oldest block
                    rows += pending.pop(0).result()
        if parts or n == 0:
            pending.append(pool.submit(write, n, b"".join(parts)))
        for f in pending:
            rows += f.result()
    return rows
