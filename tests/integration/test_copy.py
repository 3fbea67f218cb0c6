"""Parallel COPY of a Parquet partition into PostgreSQL: every row arrives once, a failing stream fails the load."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from c360 import pg, settings, warehouse

pytestmark = pytest.mark.integration

ROWS = 1_000_003  # four record batches of 250,000 and a remainder: every stream gets some


@pytest.fixture
def partition(platform, tmp_path):
    ids = pa.array(range(ROWS), pa.int64())
    pq.write_table(pa.table({"id": ids, "label": pa.compute.cast(ids, pa.string())}), tmp_path / "part-0.parquet",
                   row_group_size=100_000)
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("create schema if not exists staging")
        conn.execute("drop table if exists staging.copytest")
        conn.execute("create table staging.copytest (id bigint not null, label text)")
    yield tmp_path.as_uri()
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("drop table staging.copytest")


def _count_distinct():
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute("select count(*), count(distinct id), sum(id), "
                            "count(*) filter (where label <> id::text) from staging.copytest").fetchone()


@pytest.mark.parametrize("streams", [1, 3])
def test_every_row_once(partition, streams):
    assert warehouse.copy_parquet(partition, "staging.copytest", lambda t: t, streams=streams) == ROWS
    assert _count_distinct() == (ROWS, ROWS, ROWS * (ROWS - 1) // 2, 0)


def test_a_failing_stream_fails_the_load(partition):
    seen = []

    def prepare(t):
        seen.append(t.num_rows)
        if len(seen) == 2:
            raise ValueError("bad batch")
        return t

    with pytest.raises(ValueError, match="bad batch"):
        warehouse.copy_parquet(partition, "staging.copytest", prepare, streams=2)
    assert len(seen) < 5  # the reader stopped instead of converting the rest
