"""Full publish by swap: the audited batch table becomes the published table.

A truncate + ``insert … select`` writes every row a second time and maintains each index row by row. The
swap instead builds the published table's indexes on the batch in bulk (one sort per index), then, under
a lock held for milliseconds, renames the batch into place, re-points the views that read the table,
carries its grants over and drops the old table. All of it runs in the caller's transaction: a failure at
any step leaves the published table as it was.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from c360.warehouse import ident, sql_file

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# index builds sort in memory up to this (the server default, 64MB, spills a 1M-row key to disk)
MAINTENANCE_WORK_MEM = "256MB"


def _tmp_name(batch: str, n: int) -> str:
    # index names are unique per schema and a batch's name may be long: a short hash keeps them unique
    return f"swap_{hashlib.sha1(batch.encode()).hexdigest()[:12]}_{n}"


def swap_in(conn: psycopg.Connection, published: str, batch: str) -> None:
    """Replace ``published`` (schema.table) with the rows of ``batch``, keeping names, indexes, views, grants,
    row-level security and its policies (c360.governance's).

    The batch must have the published table's columns (``create table … (like …)``). Concurrent publishes
    of one table must be serialised by the caller (an advisory lock).
    """
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    schema, name = published.split(".")
    cur = conn.cursor(row_factory=dict_row)
    indexes = cur.execute(sql_file("warehouse/swap_indexes.sql"), {"table": published}).fetchall()
    conn.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(MAINTENANCE_WORK_MEM)))
    # 1. indexes on the batch, before any lock on the published table: readers are not kept waiting
    for n, ix in enumerate(indexes):
        tmp = sql.Identifier(_tmp_name(batch, n))
        if ix["constraint_name"]:  # primary key / unique constraint: a duplicate key fails here, not later
            conn.execute(sql.SQL("alter table {} add constraint {} {}").format(
                ident(batch), tmp, sql.SQL(ix["constraint_def"])))  # definitions come from the catalog
        else:
            conn.execute(sql.SQL("create {}index {} on {} {}").format(
                sql.SQL("unique " if ix["is_unique"] else ""), tmp, ident(batch), sql.SQL(ix["index_tail"])))
    # 2. the swap: names, views and grants; the lock is held from here to commit
    conn.execute(sql.SQL("lock table {} in access exclusive mode").format(ident(published)))
    views = cur.execute(sql_file("warehouse/swap_views.sql"), {"table": published}).fetchall()
    grants = cur.execute(sql_file("warehouse/swap_grants.sql"), {"table": published}).fetchall()
    policies = cur.execute(sql_file("warehouse/swap_policies.sql"), {"table": published}).fetchall()
    rls, force_rls = conn.execute("select relrowsecurity, relforcerowsecurity from pg_class where oid = %s::regclass",
                                  (published,)).fetchone()
    retired = f"{name}__replaced"
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, retired)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(ident(published), sql.Identifier(retired)))
    for n, ix in enumerate(indexes):  # free the index names for the batch's copies
        conn.execute(sql.SQL("alter index {} rename to {}").format(
            sql.Identifier(schema, ix["index_name"]), sql.Identifier(f"{_tmp_name(batch, n)}_old")))
    batch_schema, batch_name = batch.split(".")
    if batch_schema != schema:
        conn.execute(sql.SQL("alter table {} set schema {}").format(ident(batch), sql.Identifier(schema)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(
        sql.Identifier(schema, batch_name), sql.Identifier(name)))
    for n, ix in enumerate(indexes):  # renaming a constraint's index renames the constraint too
        conn.execute(sql.SQL("alter index {} rename to {}").format(
            sql.Identifier(schema, _tmp_name(batch, n)), sql.Identifier(ix["index_name"])))
    for v in views:  # name, options and definition from the catalog, already quoted
        options = sql.SQL(" with ({})").format(sql.SQL(", ").join(map(sql.SQL, v["options"]))) if v["options"] \
            else sql.SQL("")
        conn.execute(sql.SQL("create or replace view {}{} as {}").format(
            sql.SQL(v["view_name"]), options, sql.SQL(v["definition"])))
    for g in grants:
        conn.execute(sql.SQL("grant {} on {} to {}").format(
            sql.SQL(g["privilege_type"]), ident(published),
            sql.Identifier(g["grantee"]) if g["grantee"] else sql.SQL("public")))
    if rls:
        conn.execute(sql.SQL("alter table {} enable row level security").format(ident(published)))
    if force_rls:
        conn.execute(sql.SQL("alter table {} force row level security").format(ident(published)))
    for p in policies:  # expressions, roles and command from the catalog
        conn.execute(sql.SQL("create policy {} on {} as {} for {} to {}{}{}").format(
            sql.Identifier(p["name"]), ident(published), sql.SQL("permissive" if p["permissive"] else "restrictive"),
            sql.SQL(p["command"]), sql.SQL(", ").join(map(sql.SQL, p["roles"])),
            sql.SQL(" using ({})").format(sql.SQL(p["using_expr"])) if p["using_expr"] else sql.SQL(""),
            sql.SQL(" with check ({})").format(sql.SQL(p["check_expr"])) if p["check_expr"] else sql.SQL("")))
        if p["comment"] is not None:
            conn.execute(sql.SQL("comment on policy {} on {} is {}").format(
                sql.Identifier(p["name"]), ident(published), sql.Literal(p["comment"])))
    try:
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(schema, retired)))
    except psycopg.errors.DependentObjectsStillExist as e:  # e.g. a materialized view or a foreign key
        raise RuntimeError(f"{published}: the swap cannot drop the replaced table, something other than a view "
                           f"depends on it ({e.diag.message_detail}); nothing was published") from e
    log.info("swapped %s into %s (%d indexes rebuilt, %d views re-pointed, %d grants and %d policies kept)", batch,
             published, len(indexes), len(views), len(grants), len(policies))
