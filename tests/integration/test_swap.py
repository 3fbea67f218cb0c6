"""The full-publish swap on the real PostgreSQL: the batch becomes the table with the old table's names,
indexes, constraints, dependent views and grants; any failure leaves the published table as it was."""

from __future__ import annotations

import psycopg
import pytest

from c360 import pg, settings, swap

pytestmark = pytest.mark.integration

SCHEMA = "swaptest"
INDEXES = """
    select c.relname, regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \\S+ ', ' ON t ') as def
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'swaptest.item'::regclass order by 1
"""


@pytest.fixture
def published(platform):
    with pg.connect(settings.WAREHOUSE_CONN_ID, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade")
        conn.execute("create schema if not exists staging")
        conn.execute(f"create schema {SCHEMA}")
        conn.execute(f"""create table {SCHEMA}.item (
            id int primary key, sku text not null, note text, check (id > 0))""")
        conn.execute(f"create index item__sku_idx on {SCHEMA}.item (sku)")
        conn.execute(f"create unique index item_note on {SCHEMA}.item (coalesce(note, '')) where id < 100")
        conn.execute(f"insert into {SCHEMA}.item values (1, 'a', 'old'), (2, 'b', null)")
        conn.execute(f"create view {SCHEMA}.item_skus as select id, upper(sku) as sku from {SCHEMA}.item")
        conn.execute(f"create view {SCHEMA}.item_count as select count(*) as n from {SCHEMA}.item_skus")
        if not conn.execute("select 1 from pg_roles where rolname = 'swap_reader'").fetchone():
            conn.execute("create role swap_reader")
        conn.execute(f"grant usage on schema {SCHEMA} to swap_reader")
        conn.execute(f"grant select on {SCHEMA}.item to swap_reader")
        before = conn.execute(INDEXES).fetchall()
    yield before
    with pg.connect(settings.WAREHOUSE_CONN_ID, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade")
        conn.execute("drop table if exists staging.swaptest_batch")


def _batch(rows: str) -> None:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute("drop table if exists staging.swaptest_batch")
        conn.execute(f"create table staging.swaptest_batch (like {SCHEMA}.item including defaults "
                     f"including constraints)")
        conn.execute(f"insert into staging.swaptest_batch values {rows}")


def _swap() -> None:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        swap.swap_in(conn, f"{SCHEMA}.item", "staging.swaptest_batch")


def _rows(query: str):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return conn.execute(query).fetchall()


def test_swap_replaces_rows_and_keeps_indexes_views_grants(published):
    _batch("(3, 'c', 'new'), (4, 'd', null), (5, 'e', 'x')")
    _swap()
    assert _rows(f"select id, sku from {SCHEMA}.item order by id") == [(3, "c"), (4, "d"), (5, "e")]
    assert _rows(INDEXES) == published  # same names, same definitions
    assert _rows(f"select conname, contype from pg_constraint where conrelid = '{SCHEMA}.item'::regclass "
                 f"and contype in ('p', 'c') order by 1") == [("item_id_check", "c"), ("item_pkey", "p")]
    # the views read the new table (a view left on the old one would have kept rows 1 and 2, or failed)
    assert _rows(f"select id, sku from {SCHEMA}.item_skus order by id") == [(3, "C"), (4, "D"), (5, "E")]
    assert _rows(f"select n from {SCHEMA}.item_count") == [(3,)]
    assert _rows(f"select has_table_privilege('swap_reader', '{SCHEMA}.item', 'select')") == [(True,)]
    assert _rows("select count(*) from pg_class where relname like 'item__replaced%' "
                 "or relname like 'swap\\_%' or relname = 'swaptest_batch'") == [(0,)]
    # a second swap finds the names the first one left
    _batch("(7, 'g', null)")
    _swap()
    assert _rows(f"select id from {SCHEMA}.item_skus") == [(7,)]
    assert _rows(INDEXES) == published


@pytest.mark.parametrize("rows, error", [
    ("(3, 'c', null), (3, 'd', null)", "could not create unique index"),  # duplicate primary key
    ("(3, 'c', 'same'), (4, 'd', 'same')", "could not create unique index"),  # duplicate of a unique index
])
def test_failed_swap_leaves_the_table(published, rows, error):
    _batch(rows)
    with pytest.raises(psycopg.Error, match=error):
        _swap()
    assert _rows(f"select id, sku from {SCHEMA}.item_skus order by id") == [(1, "A"), (2, "B")]
    assert _rows(INDEXES) == published


def test_swap_refuses_to_drop_what_it_cannot_repoint(published):
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        conn.execute(f"create materialized view {SCHEMA}.item_mv as select * from {SCHEMA}.item")
    _batch("(3, 'c', null)")
    with pytest.raises(RuntimeError, match=r"swaptest.item: the swap cannot drop the replaced table, .*item_mv depends"):
        _swap()
    assert _rows(f"select id from {SCHEMA}.item order by id") == [(1,), (2,)]
    assert _rows(f"select id from {SCHEMA}.item_mv order by id") == [(1,), (2,)]
