"""PostgreSQL's CSV dialect read exactly: a ``COPY … TO STDOUT (FORMAT csv)`` stream into Parquet.

PostgreSQL writes CSV with ``"`` as quote and escape (a quote inside a value is doubled), values holding a
delimiter, quote, CR or LF quoted (so a value may span lines), backslashes as plain characters, NULL as an
unquoted empty field and the empty string as ``""``. Arrow's CSV reader is configured for exactly that
(``newlines_in_values``, ``double_quote``, no escape character, a quoted empty field is a string, not NULL),
so every value PostgreSQL can hold comes back byte for byte, including line breaks, quotes and backslashes.
The stream is parsed in blocks as it arrives and written as Parquet row groups: never held whole in memory.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    import pyarrow as pa

BLOCK_BYTES = 16 * 2**20  # Arrow parses a block per call; big enough to amortise, small enough to stream


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (psycopg yields a COPY stream that way)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf = chunks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n], self._buf = self._buf[:n], self._buf[n:]
        return n


def session_settings(conn: psycopg.Connection) -> None:
    """Render values the way the readers expect, whatever the server's defaults: ISO dates, exact floats."""
    conn.execute("set datestyle = 'ISO, YMD'; set intervalstyle = 'iso_8601'; set extra_float_digits = 1")


def copy_to_parquet(conn: psycopg.Connection, query: Any, params: dict | None, schema: pa.Schema,
                    out) -> int:
    """Run ``query`` (a ``copy (…) to stdout with (format csv, header true)`` statement) and write its rows
    with ``schema`` as Parquet to the binary file ``out``; return the rows written.

    Columns are read by position as ``schema`` names them (the header line is skipped, not trusted). A value
    that does not convert to its column's type fails with Arrow's message naming the column and row.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = 0
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        reader = pacsv.open_csv(
            io.BufferedReader(_ChunkReader(iter(copy)), buffer_size=BLOCK_BYTES),
            read_options=pacsv.ReadOptions(column_names=schema.names, skip_rows=1, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, double_quote=True, escape_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False,
                null_values=[""], true_values=["t"], false_values=["f"]),  # PostgreSQL's booleans
        )
        with pq.ParquetWriter(out, schema, compression="snappy") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows
