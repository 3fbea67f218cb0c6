"""Governance from the registry, enforced by PostgreSQL itself: roles, masking views, row-level security,
logins (README "Governance"; seed 002 "Data Governance Policies").

The registry declares it (``datasets.yaml``: each column's ``pii`` and ``mask``, a JSON document's ``embeds``, and
the ``governance`` section: roles, row policies, the data subject); :func:`apply` makes the warehouse so,
idempotently, in the caller's transaction:

* **roles**: each declared role (created NOLOGIN: :func:`login` gives one a password), and ``c360_governed``, which
  owns the masking views and is nobody's login and nobody's role. PostgreSQL logs every statement of every
  declared role (``log_statement = all``); a governed role's ``search_path`` is its schema.
* **full access** (``access: full``): SELECT on every table and view of ``c360``, ``staging``, ``quality``, ``meta``
  and the governed schemas, and on the audit trail, now and for tables created later.
* **a schema per governed role** (``marketing``, ``consumer``): a security-barrier view per published table, each
  column as :func:`rule` says (the SQL of each rule: :func:`masked`), and per view and function of ``c360`` (the
  lens) its definition re-pointed at the schema's views, so it computes from masked rows. The role gets USAGE on
  its schema and SELECT on its views, and nothing else in the warehouse; a member role reads its parent's.
* **row-level security** on every published table: the views' owner sees the rows the querying user
  (``current_user``; a view does not change it) may see by ``governance.row_policy`` (the registry's row policies),
  full-access roles see every row; a table without a policy's column shows the rows of the subjects (customers)
  the user sees (``governance.row_subjects``).

What exists is compared with what the registry asks for by fingerprints kept in the objects' comments, so a publish
that changes nothing costs a few catalog queries (:class:`Applied` says what changed and how long it took). Every
change is an entry of the audit trail (``policy_change``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from c360 import pg, settings, warehouse
from c360.registry import Column, Governance, Registry, Role, load_registry
from c360.warehouse import ident, sql_file

if TYPE_CHECKING:
    from collections.abc import Iterable

    import psycopg
    from psycopg import sql

    from c360.warehouse import Table

log = logging.getLogger(__name__)

OWNER = "c360_governed"  # owns the masking views; never a login, never granted to a role
SOURCE = "c360"  # the schema of the published tables and of the lens views and functions
FULL_ACCESS_SCHEMAS = ("c360", "staging", "quality", "meta")  # a full-access role reads every table of these
MARK = "c360 governance"  # an object's comment: MARK and the fingerprint of its definition
POLICY, FULL_POLICY = "c360_governed_read", "c360_full_access"

# how the README, the steward page and the demo say each rule (registry.MaskRule)
RULES = {
    "raw": "as is",
    "sha256": "SHA-256",
    "hidden": "not visible",
    "age_range": "range (30-39)",
    "income_range": "range (50k-75k)",
}


def config(registry: Registry | None = None) -> Governance:
    g = (registry or load_registry()).governance
    if g is None:
        raise settings.SettingError("the registry has no governance section (include/c360/datasets.yaml)")
    return g


# ---- the rules -------------------------------------------------------------------------------------------


def rule(g: Governance, role: Role | str, column: Column) -> str:
    """How ``role`` sees ``column``: a full-access role, and every role a column that is not PII, as it is;
    otherwise the column's ``mask`` for the role's governed role (itself or its parent), else that role's ``pii``."""
    role = g.roles[role] if isinstance(role, str) else role
    if role.access == "full" or not column.pii:
        return "raw"
    parent = g.schema_role(role)
    return column.mask.get(parent.name, parent.pii)


def hash_input(column: Column, value: sql.Composable) -> sql.Composable:
    """The text a value is hashed as: a date or timestamp in ISO 8601 whatever the session's DateStyle, anything
    else as PostgreSQL's text of it (a JSON column: governance.pii_sha256_json)."""
    from psycopg import sql

    if column.type in ("date", "timestamp"):
        return sql.SQL("(to_jsonb({}) #>> '{{}}')").format(value)
    return sql.SQL("{}::text").format(value)


def masked(rule_name: str, column: Column, value: sql.Composable) -> sql.Composable | None:
    """The SQL of ``value`` (an expression of ``column``'s type) under a rule; None: the role does not see it."""
    from psycopg import sql

    salt = sql.SQL("(select salt from governance.pii_salt)")
    if rule_name == "raw":
        return value
    if rule_name == "hidden":
        return None
    if rule_name == "sha256":
        if column.type == "json":
            return sql.SQL("governance.pii_sha256_json({}, {})").format(salt, value)
        return sql.SQL("governance.pii_sha256({}, {})").format(salt, hash_input(column, value))
    if rule_name == "age_range":
        return sql.SQL("governance.age_range({})").format(value)
    if rule_name == "income_range":
        return sql.SQL("governance.income_range({}::text)").format(value)
    raise ValueError(f"unknown masking rule {rule_name!r}")


def json_path(path: str) -> str:
    """A registry document path (``demographics.age``) as a PostgreSQL text[] literal: ``{demographics,age}``."""
    return "{" + ",".join(path.split(".")) + "}"


def column_sql(g: Governance, role: Role, entry: Table, column: Column) -> sql.Composable | None:
    """``column`` of ``entry``'s table (alias ``t``) as ``role`` sees it; a document that embeds other columns
    shows each embedded copy as the role sees that column (replaced by its masked value, or removed)."""
    from psycopg import sql

    def value(c: Column) -> sql.Composable:
        return sql.SQL("t.{}").format(sql.Identifier(c.name))

    r = rule(g, role, column)
    if r != "raw" or not column.embeds:
        return masked(r, column, value(column))
    by_name = {c.name: c for c in entry.columns}
    doc: sql.Composable = value(column)
    for path, name in sorted(column.embeds.items()):  # in a stable order: the view's fingerprint is its text
        target = by_name[name]
        rr = rule(g, role, target)
        if rr == "raw":
            continue
        keys = sql.Literal(json_path(path))
        if rr == "hidden":
            doc = sql.SQL("({} #- {}::text[])").format(doc, keys)
        else:
            doc = sql.SQL("jsonb_set({}, {}::text[], coalesce(to_jsonb({}), 'null'::jsonb), false)").format(
                doc, keys, masked(rr, target, value(target)))
    return doc


def view_query(g: Governance, role: Role, entry: Table) -> sql.Composed:
    """The select of ``role``'s view of a published table: its columns in the registry's order, masked."""
    from psycopg import sql

    columns = [sql.SQL("{} as {}").format(e, sql.Identifier(c.name))
               for c in entry.columns if (e := column_sql(g, role, entry, c)) is not None]
    return sql.SQL("select {} from {} as t").format(sql.SQL(", ").join(columns), ident(entry.table))


def row_predicate(g: Governance, entry: Table, subject_table: str) -> sql.Composed:
    """The USING of the views' owner's row-level security policy on ``entry``'s table: per policy column the table
    has, the querying user is restricted on it by no policy or the row's value is one it may see; and, when the
    table lacks a policy's column but holds the subject's id, the id is one of the subjects the user may see.
    Every subquery is uncorrelated: PostgreSQL evaluates each once per query (an InitPlan, a hashed SubPlan)."""
    from psycopg import sql

    names = {c.name for c in entry.columns}
    columns = list(dict.fromkeys(p.column for p in g.row_policies))
    parts = [sql.SQL(
        "((select not exists (select from governance.active_row_policy p where p.column_name = {c})) "
        "or {col}::text = any (array(select unnest(p.allowed) from governance.active_row_policy p "
        "where p.column_name = {c})))").format(c=sql.Literal(c), col=sql.Identifier(c))
        for c in columns if c in names]
    key = next((k for k in g.subject.key_columns if k in names), None)
    if entry.table != subject_table and key and any(c not in names for c in columns):
        parts.append(sql.SQL(
            "((select not exists (select from governance.active_row_policy)) "
            "or {k}::text in (select governance.row_subjects(current_user)))").format(k=sql.Identifier(key)))
    return sql.SQL(" and ").join(parts) if parts else sql.SQL("true")


def _policy_text(g: Governance, entry: Table, subject_table: str) -> str:
    return row_predicate(g, entry, subject_table).as_string(None)


def row_subjects_sql(g: Governance, registry: Registry) -> sql.Composed:
    """``governance.row_subjects(user)``: the ids of the subjects ``user`` may see by its row policies. Security
    definer (the views' owner), so a policy that calls it depends on no table: the subject's table can be swapped;
    nobody but the views' owner and the warehouse owner can name it (no USAGE on schema governance)."""
    from psycopg import sql

    subject = registry[g.subject.dataset]
    columns = list(dict.fromkeys(p.column for p in g.row_policies))
    applies = sql.SQL("p.column_name = {} and pg_has_role($1, p.role_name, 'member') "
                      "and not (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = $1)")
    where = sql.SQL(" and ").join(
        sql.SQL("(not exists (select from governance.row_policy p where {a}) or t.{col}::text = any "
                "(array(select unnest(p.allowed) from governance.row_policy p where {a})))").format(
            a=applies.format(sql.Literal(c)), col=sql.Identifier(c)) for c in columns) if columns else sql.SQL("true")
    query = sql.SQL("select t.{key}::text from {table} as t where {where}").format(
        key=sql.Identifier(g.subject.key), table=ident(subject.table), where=where)
    return sql.SQL(
        "create or replace function governance.row_subjects(p_user name) returns setof text language plpgsql "
        "stable security definer set search_path = pg_catalog, pg_temp as $body$\n"
        "begin\n"
        "    if to_regclass({table}) is null then return; end if;\n"
        "    return query execute {query} using p_user;\n"
        "end\n$body$").format(table=sql.Literal(subject.table), query=sql.Literal(query.as_string(None)))


# ---- what apply creates ------------------------------------------------------------------------------------


_MEMO: dict[tuple, tuple[Any, Any]] = {}


def _memo(fn, *args: Any) -> Any:
    """``fn(*args)`` once per set of argument objects (registry models are immutable, loaded once per process):
    composing SQL costs more than the catalog queries of a publish that changes nothing."""
    key = (fn.__name__, *map(id, args))
    hit = _MEMO.get(key)
    if hit is None or any(a is not b for a, b in zip(hit[0], args, strict=True)):
        hit = _MEMO[key] = (args, fn(*args))
    return hit[1]


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class Governed:
    """One object of a governed schema: a masking view of a published table, or a lens view or function of
    ``c360`` re-pointed at the schema's views."""

    schema: str
    name: str
    kind: str  # view | function
    role: str  # the governed role of the schema
    create: str  # the create-or-replace statement
    signature: str = ""  # a function's name(arguments)
    depends: tuple[str, ...] = ()  # names of the same schema it reads (created before it)
    source: str = ""  # what it is made from: a published table or a c360 view or function
    optional: bool = False  # a lens object: one that cannot be made for the role is left out, not an error

    @property
    def qualified(self) -> str:
        from psycopg import sql

        return sql.Identifier(self.schema, self.name).as_string(None) + (
            f"({self.signature})" if self.kind == "function" else "")

    def fingerprint(self, readers: tuple[str, ...]) -> str:
        return _fingerprint(self.create, OWNER, readers)


def table_view(g: Governance, role: Role, entry: Table) -> Governed:
    from psycopg import sql

    name = entry.table.split(".", 1)[1]
    create = sql.SQL("create or replace view {} with (security_barrier = true) as {}").format(
        sql.Identifier(role.view_schema, name), view_query(g, role, entry)).as_string(None)
    return Governed(role.view_schema, name, "view", role.name, create, source=entry.table)


_REF = re.compile(rf'\b{SOURCE}\.("?)([a-z_][a-z0-9_]*)\1')


def _repoint(text: str, schema: str) -> tuple[str, set[str]]:
    """``text`` with every ``c360.<name>`` made ``<schema>.<name>``, and the names it referred to."""
    names = {m.group(2) for m in _REF.finditer(text)}
    return _REF.sub(lambda m: f"{schema}.{m.group(2)}", text), names


def lens_objects(conn: psycopg.Connection, g: Governance, governed_tables: set[str]) -> list[Governed]:
    """Each view and function of ``c360`` (the lens: include/sql/outputs/) as each governed role's: its definition
    from the catalog with every ``c360.x`` made ``<schema>.x``, so it reads the role's masked views. One that reads
    anything else (a table without a masking view, another schema) is left out, and so are security-definer
    functions (they would read as their owner)."""
    from psycopg.rows import dict_row

    with conn.transaction():  # a savepoint (or a transaction): the setting below ends with it, even on error
        (path,) = conn.execute("select current_setting('search_path')").fetchone()
        conn.execute("select set_config('search_path', 'pg_catalog', true)")  # the catalog writes names qualified
        cur = conn.cursor(row_factory=dict_row)
        sources = cur.execute(sql_file("governance/lens_sources.sql"), {"schema": SOURCE}).fetchall()
        conn.execute("select set_config('search_path', %s, true)", (path,))
    by_name = {s["name"]: s for s in sources}
    objects = []
    for role in g.governed():
        available = set(governed_tables)
        pending = {}
        for s in sources:
            text = s["definition"]
            if s["kind"] == "view":
                text = f"create or replace view {SOURCE}.{s['name']} with (security_barrier = true) as\n{text}"
            created, refs = _repoint(text, role.view_schema)
            refs.discard(s["name"])
            outside = [d for d in s["foreign"] or [] if d]
            if s["secdef"] or outside:
                log.warning("governance: %s.%s is not offered to %s: it %s", SOURCE, s["name"], role.name,
                            "is security definer" if s["secdef"] else f"reads {outside}")
                continue
            pending[s["name"]] = Governed(role.view_schema, s["name"], s["kind"], role.name, created,
                                          signature=s["args"] or "", depends=tuple(sorted(refs)),
                                          source=f"{SOURCE}.{s['name']}", optional=True)
        # in dependency order; one that reads something without a masking view is left out
        while pending:
            ready = [n for n, o in pending.items() if set(o.depends) <= available]
            if not ready:
                for n, o in pending.items():
                    log.warning("governance: %s.%s is not offered to %s: it reads %s", SOURCE, n, role.name,
                                sorted(set(o.depends) - available - set(by_name)) or sorted(o.depends))
                break
            for n in sorted(ready):
                objects.append(pending.pop(n))
                available.add(n)
    return objects


# ---- apply -------------------------------------------------------------------------------------------------


@dataclass
class Applied:
    """What one :func:`apply` changed (subject → what), and how long it took."""

    changes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, subject: str, what: str) -> None:
        self.changes.setdefault(subject, []).append(what)

    def __bool__(self) -> bool:
        return bool(self.changes)


def apply(conn: psycopg.Connection, entries: Iterable[Table] | None = None, *, lens: bool = False,
          registry: Registry | None = None, interval: warehouse.Interval | None = None) -> Applied:
    """Make the warehouse what the registry's governance says, in the caller's transaction, and record what changed
    in the audit trail (one ``policy_change`` entry per subject: role, table, view).

    ``entries`` None: everything (every published table that exists, the lens, and the governed schemas' objects
    the registry no longer asks for are dropped). Otherwise only these published tables' views and row security
    (what a publish just published), and with ``lens`` also the lens, which reads every published table: then every
    published table that exists is looked at. ``interval``: the publish's run, named by the audit entries."""
    started = time.perf_counter()
    registry = registry or load_registry()
    g = registry.governance
    done = Applied()
    if g is None:
        return done
    full = entries is None
    entries = list(entries or [])
    _apply_global(conn, registry, g, done)
    if full and _log_with_user():
        done.add("log_line_prefix", f"server setting now {LOG_LINE_PREFIX!r}: the statement log names the user")
    wanted = {e.table: e for e in ([*registry.published(), *entries] if full or lens else entries)}
    (existing,) = conn.execute("select array(select t from unnest(%s::text[]) as e(t) where to_regclass(t) is not "
                               "null)", (list(wanted),)).fetchone()
    tables = [wanted[t] for t in wanted if t in existing]
    subject_table = registry[g.subject.dataset].table
    _apply_row_security(conn, g, tables, subject_table, done)
    objects = [_memo(table_view, g, role, e) for role in g.governed() for e in tables]
    if full or lens:
        objects += lens_objects(conn, g, {e.table.split(".", 1)[1] for e in tables})
    if _apply_objects(conn, g, objects, done, drop_stale=full) and not (full or lens):
        # a view recreated with other columns took the lens views reading it along: every governed view again
        everything = [e for e in registry.published()
                      if conn.execute("select to_regclass(%s) is not null", (e.table,)).fetchone()[0]]
        objects = [_memo(table_view, g, role, e) for role in g.governed() for e in everything]
        objects += lens_objects(conn, g, {e.table.split(".", 1)[1] for e in everything})
        _apply_objects(conn, g, objects, done, drop_stale=False)
    for subject, what in done.changes.items():
        warehouse.audit(conn, "policy_change", subject, interval=interval, detail={"changes": what})
    done.seconds = time.perf_counter() - started
    if done:
        log.info("governance: %d changes in %.0f ms: %s", sum(map(len, done.changes.values())),
                 1000 * done.seconds, ", ".join(done.changes))
    return done


def _full_access(g: Governance) -> list[str]:
    """The full-access roles, sorted: what is granted does not depend on the order of the registry."""
    return sorted(r.name for r in g.roles.values() if r.access == "full")


def _readers(g: Governance, role: str) -> tuple[str, ...]:
    """Who gets SELECT on a governed object of ``role``'s schema: the role and the full-access roles."""
    return (role, *_full_access(g))


def global_statements(registry: Registry, g: Governance) -> list[sql.Composable]:
    """What does not depend on which tables exist: the governance objects, roles, memberships, role settings,
    schemas, grants, the row policies' rows and function."""
    from psycopg import sql

    full = _full_access(g)
    roles = sorted(g.roles.values(), key=lambda r: r.name)
    stmts: list[sql.Composable] = [sql_file("governance/objects.sql")]
    for name in (*sorted(g.roles), OWNER):
        stmts.append(sql.SQL(
            "do $do$ begin if not exists (select from pg_roles where rolname = {n}) then create role {r} nologin; "
            "end if; end $do$").format(n=sql.Literal(name), r=sql.Identifier(name)))
    stmts.append(sql.SQL("alter role {} nologin").format(sql.Identifier(OWNER)))
    stmts.append(sql.SQL("comment on role {} is {}").format(sql.Identifier(OWNER), sql.Literal(
        f"{MARK}: owns the masking views (c360.governance); never a login, never granted")))
    for r in roles:
        stmts.append(sql.SQL("comment on role {} is {}").format(sql.Identifier(r.name), sql.Literal(r.description)))
        stmts.append(_or_warn(sql.SQL("alter role {} set log_statement = 'all'").format(sql.Identifier(r.name)),
                              f"{r.name}'s statements are not logged: setting log_statement needs a superuser"))
        if r.member_of:  # reads its parent's views; cannot SET ROLE to it (that would shed its row policies)
            stmts.append(sql.SQL("grant {} to {} with inherit true, set false").format(
                sql.Identifier(r.member_of), sql.Identifier(r.name)))
        if r.access != "full":
            stmts.append(sql.SQL("alter role {} set search_path = {}").format(
                sql.Identifier(r.name), sql.Identifier(g.schema_role(r).view_schema)))
    schemas = sorted(r.view_schema for r in g.governed())
    for r in sorted(g.governed(), key=lambda r: r.name):
        stmts += [sql.SQL("create schema if not exists {}").format(sql.Identifier(r.view_schema)),
                  sql.SQL("revoke all on schema {} from public").format(sql.Identifier(r.view_schema)),
                  sql.SQL("grant usage on schema {} to {}").format(
                      sql.Identifier(r.view_schema), sql.SQL(", ").join(map(sql.Identifier, _readers(g, r.name))))]
    owner = sql.Identifier(OWNER)
    stmts += [sql.SQL("create schema if not exists {}").format(sql.Identifier(SOURCE)),
              sql.SQL("grant usage on schema {}, governance to {}").format(sql.Identifier(SOURCE), owner),
              sql.SQL("grant select on all tables in schema {} to {}").format(sql.Identifier(SOURCE), owner),
              sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                  sql.Identifier(SOURCE), owner),
              sql.SQL("grant select on governance.pii_salt, governance.row_policy, governance.active_row_policy "
                      "to {}").format(owner)]
    for name in full:
        role = sql.Identifier(name)
        for schema in (*FULL_ACCESS_SCHEMAS, *schemas):
            stmts += [sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)),
                      sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), role),
                      sql.SQL("grant select on all tables in schema {} to {}").format(sql.Identifier(schema), role),
                      sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
                          sql.Identifier(schema), role)]
        stmts += [sql.SQL("grant usage on schema governance to {}").format(role),
                  sql.SQL("grant select on governance.audit_log, governance.row_policy to {}").format(role)]
    # the other databases of this server (sources, Airflow's): no connecting by default (their owner's to revoke)
    stmts.append(sql.SQL(
        "do $do$ declare d text; begin for d in select datname from pg_database where datname = any ({dbs}) "
        "and datname <> current_database() loop begin execute format('revoke connect on database %I from public', "
        "d); exception when insufficient_privilege then raise warning 'c360 governance: PUBLIC keeps CONNECT on "
        "database % (only its owner can revoke it)', d; end; end loop; end $do$").format(
        dbs=sql.Literal([*settings.DATABASES, settings.AIRFLOW_DATABASE])))
    stmts.append(row_subjects_sql(g, registry))
    return stmts


def _or_warn(statement: sql.Composable, warning: str) -> sql.Composed:
    """``statement`` in a block that turns a refusal for want of privilege into a warning: what only a superuser may
    do must not fail a publish on a server where the warehouse's user is none."""
    from psycopg import sql

    return sql.SQL("do $do$ begin execute {}; exception when insufficient_privilege then raise warning {}; "
                   "end $do$").format(sql.Literal(statement.as_string(None)), sql.Literal(f"c360 governance: {warning}"))


def _policy_rows(g: Governance) -> list[tuple]:
    rows: dict[tuple[str, str], tuple] = {}
    for p in g.row_policies:  # two policies of a role on one column: either's values
        key = (p.role, p.column)
        before = rows.get(key, (p.role, p.column, (), ""))
        rows[key] = (p.role, p.column, tuple(dict.fromkeys((*before[2], *p.values))),
                     "; ".join(filter(None, (before[3], p.description))))
    return sorted(rows.values())


def _global_plan(registry: Registry, g: Governance) -> tuple[list[str], list[tuple], str]:
    stmts = [s.as_string(None) for s in global_statements(registry, g)]
    policies = _policy_rows(g)
    return stmts, policies, _fingerprint(stmts, policies)


def _apply_global(conn: psycopg.Connection, registry: Registry, g: Governance, done: Applied) -> None:
    from psycopg import sql

    stmts, policies, fp = _memo(_global_plan, registry, g)
    if _global_in_place(conn, g, fp):
        _sync_salt(conn, done)
        return
    conn.execute("select pg_advisory_xact_lock(hashtext('c360.governance'))")  # roles are the server's
    if _global_in_place(conn, g, fp):  # another session did it while this one waited
        _sync_salt(conn, done)
        return
    before = {r for (r,) in conn.execute("select rolname from pg_roles where rolname = any(%s)",
                                         ([*g.roles, OWNER],)).fetchall()}
    for s in stmts:
        conn.execute(s)
    for r in [*g.roles, OWNER]:
        if r not in before:
            done.add(r, "role created")
    current = [tuple(r) for r in conn.execute(
        "select role_name::text, column_name::text, allowed, coalesce(description, '') from governance.row_policy "
        "order by 1, 2").fetchall()]
    wanted = [(r, c, list(v), d) for r, c, v, d in policies]
    if current != wanted:
        conn.execute("delete from governance.row_policy")
        for r, c, v, d in wanted:
            conn.execute("insert into governance.row_policy values (%s, %s, %s, %s)", (r, c, v, d or None))
        done.add("governance.row_policy", f"row policies now {[(r, c, v) for r, c, v, _ in wanted]}")
    _sync_salt(conn, done)
    conn.execute(sql.SQL("comment on schema governance is {}").format(sql.Literal(f"{MARK} {fp}")))
    done.add("governance", f"roles, schemas, grants and role settings applied ({fp})")


def _global_in_place(conn: psycopg.Connection, g: Governance, fp: str) -> bool:
    """The global objects are as fingerprinted, and nothing they grant went missing (e.g. a schema dropped and
    created again, a table created by another role)."""
    from psycopg.rows import dict_row

    roles = [*g.roles, OWNER]
    full = _full_access(g)
    cur = conn.cursor(row_factory=dict_row)
    state = cur.execute(sql_file("governance/global_state.sql"), {
        "mark": f"{MARK} {fp}", "roles": roles, "schemas": [r.view_schema for r in g.governed()],
        "full": full, "full_schemas": list(FULL_ACCESS_SCHEMAS), "owner": OWNER, "source": SOURCE}).fetchone()
    return all(state.values())


LOG_LINE_PREFIX = "%m [%p] %q%u@%d "  # the server default and who ran the statement, in which database


def _log_with_user() -> bool:
    """The declared roles' statements are logged (``log_statement``, per role); for the log to say whose, its
    lines name the user: ``log_line_prefix`` gets ``%u`` (ALTER SYSTEM: a server setting, set once, on a server
    where the warehouse's user is a superuser; it cannot run in the caller's transaction, hence a connection of
    its own)."""
    with pg.connect(settings.WAREHOUSE_CONN_ID, autocommit=True) as conn:
        prefix, superuser = conn.execute(
            "select current_setting('log_line_prefix'), rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
        if "%u" in prefix:
            return False
        if not superuser:
            log.warning("governance: log_line_prefix (%r) does not name the user and only a superuser can change it;"
                        " the governed roles' statements are logged without it", prefix)
            return False
        from psycopg import sql

        conn.execute(sql.SQL("alter system set log_line_prefix = {}").format(sql.Literal(LOG_LINE_PREFIX)))
        conn.execute("select pg_reload_conf()")
        return True


def _sync_salt(conn: psycopg.Connection, done: Applied) -> None:
    """The salt in the warehouse: set once (C360_PII_SALT, else :func:`pii_salt`); replaced only when
    C360_PII_SALT is set to another value (a rotation: every hash changes)."""
    row = conn.execute("select salt from governance.pii_salt").fetchone()
    configured = os.environ.get("C360_PII_SALT")
    if row is None:
        conn.execute("insert into governance.pii_salt (salt) values (%s)", (configured or pii_salt(),))
        done.add("governance.pii_salt", "salt set")
    elif configured and row[0] != configured:
        conn.execute("update governance.pii_salt set salt = %s", (configured,))
        done.add("governance.pii_salt", "salt rotated (C360_PII_SALT): every SHA-256 a governed role sees changed")


def _apply_row_security(conn: psycopg.Connection, g: Governance, tables: list[Table], subject_table: str,
                        done: Applied) -> None:
    """Row-level security on each published table: the views' owner's policy (:func:`row_predicate`) and every
    row for the full-access roles."""
    from psycopg import sql
    from psycopg.rows import dict_row

    if not tables:
        return
    full = _full_access(g)
    cur = conn.cursor(row_factory=dict_row)
    state = {r["name"]: r for r in cur.execute(sql_file("governance/table_state.sql"), {
        "tables": [e.table for e in tables], "owner": OWNER, "full": full}).fetchall()}
    for e in tables:
        using = _memo(_policy_text, g, e, subject_table)
        want = {POLICY: f"{MARK} {_fingerprint(using, OWNER)}"}
        if full:
            want[FULL_POLICY] = f"{MARK} {_fingerprint('true', full)}"
        s = state[e.table]
        if s["rls"] and s["readable"] and all(s["policies"].get(k) == v for k, v in want.items()):
            continue
        table = ident(e.table)
        conn.execute(sql.SQL("grant select on {} to {}").format(
            table, sql.SQL(", ").join(map(sql.Identifier, (OWNER, *full)))))
        conn.execute(sql.SQL("alter table {} enable row level security").format(table))
        if s["policies"].get(POLICY) != want[POLICY]:
            conn.execute(sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(POLICY), table))
            conn.execute(sql.SQL("create policy {} on {} as permissive for select to {} using ({})").format(
                sql.Identifier(POLICY), table, sql.Identifier(OWNER), sql.SQL(using)))
            conn.execute(sql.SQL("comment on policy {} on {} is {}").format(
                sql.Identifier(POLICY), table, sql.Literal(want[POLICY])))
        if full and s["policies"].get(FULL_POLICY) != want[FULL_POLICY]:
            conn.execute(sql.SQL("drop policy if exists {} on {}").format(sql.Identifier(FULL_POLICY), table))
            conn.execute(sql.SQL("create policy {} on {} as permissive for select to {} using (true)").format(
                sql.Identifier(FULL_POLICY), table, sql.SQL(", ").join(map(sql.Identifier, full))))
            conn.execute(sql.SQL("comment on policy {} on {} is {}").format(
                sql.Identifier(FULL_POLICY), table, sql.Literal(want[FULL_POLICY])))
        done.add(e.table, "row-level security and its policies applied")


def _apply_objects(conn: psycopg.Connection, g: Governance, objects: list[Governed], done: Applied,
                   drop_stale: bool) -> bool:
    """Create what is missing or changed among ``objects`` (in their order: each after what it reads), owned by
    the views' owner, readable by its schema's role and the full-access roles; with ``drop_stale``, drop the
    governed schemas' other objects. Returns whether a view had to be dropped (with what reads it)."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    schemas = [r.view_schema for r in g.governed()]
    roles = [r.name for r in g.governed()]
    names = sorted({o.name for o in objects})
    cur = conn.cursor(row_factory=dict_row)
    cascaded = False
    for _ in range(3):  # a view dropped to be recreated takes the views reading it along: another round
        state = {(r["schema"], r["name"], r["kind"]): r for r in cur.execute(
            sql_file("governance/object_state.sql"),
            {"schemas": schemas, "roles": roles, "names": None if drop_stale else names}).fetchall()}
        again = False
        for o in objects:
            readers = _readers(g, o.role)
            mark = f"{MARK} {o.fingerprint(readers)}"
            s = state.pop((o.schema, o.name if o.kind == "view" else f"{o.name}({o.signature})", o.kind), None)
            if s and s["comment"] == mark and s["owner"] == OWNER and s["readable"] and s["ok"]:
                continue
            kind = sql.SQL("view" if o.kind == "view" else "function")
            target = sql.SQL(o.qualified)
            how = "created" if s is None else "replaced"
            try:
                with conn.transaction():
                    try:
                        with conn.transaction():
                            conn.execute(o.create)
                    except (psycopg.errors.InvalidTableDefinition, psycopg.errors.InvalidFunctionDefinition,
                            psycopg.errors.DatatypeMismatch, psycopg.errors.DuplicateColumn) as exc:
                        # a column or result type changed: create or replace cannot; what reads it goes too
                        log.info("governance: recreating %s (%s)", o.qualified, str(exc).splitlines()[0])
                        conn.execute(sql.SQL("drop {} if exists {} cascade").format(kind, target))
                        conn.execute(o.create)
                        again = cascaded = True
                        how = "recreated (its columns changed)"
            except psycopg.Error as exc:
                if not o.optional:
                    raise
                # e.g. a lens view reading a column the role's view leaves out: the role goes without it
                log.warning("governance: %s is not offered to %s: %s", o.source, o.role, str(exc).splitlines()[0])
                if s is not None:
                    conn.execute(sql.SQL("drop {} if exists {} cascade").format(kind, target))
                    done.add(f"{o.schema}.{o.name}", f"dropped: {str(exc).splitlines()[0]}")
                continue
            conn.execute(sql.SQL("alter {} {} owner to {}").format(kind, target, sql.Identifier(OWNER)))
            on = sql.SQL("table" if o.kind == "view" else "function")  # grant names a view a table
            conn.execute(sql.SQL("revoke all on {} {} from public").format(on, target))
            conn.execute(sql.SQL("grant {} on {} {} to {}").format(
                sql.SQL("select" if o.kind == "view" else "execute"), on, target,
                sql.SQL(", ").join(map(sql.Identifier, readers))))
            conn.execute(sql.SQL("comment on {} {} is {}").format(kind, target, sql.Literal(mark)))
            done.add(f"{o.schema}.{o.name}", f"{how} from {o.source}")
        if drop_stale:
            for (schema, name, kind), _s in sorted(state.items()):
                target = sql.SQL(f"{sql.Identifier(schema).as_string(None)}.{name}" if kind == "function"
                                 else sql.Identifier(schema, name).as_string(None))
                conn.execute(sql.SQL("drop {} if exists {} cascade").format(sql.SQL(kind), target))
                done.add(f"{schema}.{name.split('(')[0]}", "dropped: the registry no longer asks for it")
                again = cascaded = True
            drop_stale = False
        if not again:
            break
    return cascaded


# ---- logins (the demo, make psql ROLE=...) ------------------------------------------------------------------


def secrets_dir() -> Path:
    """``<state>/secrets`` (0700): the generated salt and logins; under the git-ignored state folder."""
    d = settings.state_dir() / "secrets"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def pii_salt() -> str:
    """The salt when C360_PII_SALT is not set: generated once into ``<state>/secrets/pii_salt`` (0600)."""
    path = secrets_dir() / "pii_salt"
    if not path.exists():
        _write_secret(path, secrets.token_hex(32))
    return path.read_text().strip()


def login(role: str) -> dict[str, str]:
    """psycopg's ``user`` and ``password`` for ``role``: a login with a generated password (kept in
    ``<state>/secrets/logins.json``, 0600), created on first use; on the embedded server a declared role's
    login then needs its password (pg_hba.conf)."""
    from psycopg import sql

    g = config()
    if role not in g.roles:
        raise settings.SettingError(f"no role {role!r} in the registry's governance section; known: {sorted(g.roles)}")
    path = secrets_dir() / "logins.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        apply(conn)  # the role, and its views of what is published
        (can_login,) = conn.execute("select rolcanlogin from pg_roles where rolname = %s", (role,)).fetchone()
        if role not in known or not can_login:
            known.setdefault(role, secrets.token_urlsafe(24))
            _write_secret(path, json.dumps(known, indent=1, sort_keys=True))
            conn.execute(sql.SQL("alter role {} login password {}").format(
                sql.Identifier(role), sql.Literal(known[role])))
            warehouse.audit(conn, "policy_change", role, detail={"changes": ["login enabled, password set"]})
        _require_passwords(conn, list(g.roles))
    return {"user": role, "password": known[role]}


HBA_BEGIN = "# c360 governance: the declared roles log in with their password (c360.governance.login)"
HBA_END = "# end c360 governance"


def _require_passwords(conn: psycopg.Connection, roles: list[str]) -> None:
    """On a server whose pg_hba.conf this process can write (the embedded one), a block before the others that
    makes the declared roles' logins need their password (the embedded server trusts every local login)."""
    (hba,) = conn.execute("select current_setting('hba_file', true)").fetchone()  # NULL if not ours to read
    path = Path(hba or "/nonexistent")
    if not path.exists() or not os.access(path, os.W_OK):
        return
    users = ",".join(sorted(roles))
    block = "\n".join([HBA_BEGIN, f"local all {users} scram-sha-256",
                       f"host  all {users} 127.0.0.1/32 scram-sha-256", f"host  all {users} ::1/128 scram-sha-256",
                       HBA_END])
    text = path.read_text()
    rest = re.sub(rf"{re.escape(HBA_BEGIN)}.*?{re.escape(HBA_END)}\n", "", text, flags=re.S)
    if text.startswith(block + "\n"):
        return
    path.write_text(f"{block}\n{rest}")
    conn.execute("select pg_reload_conf()")
    time.sleep(0.3)  # the postmaster reloads on SIGHUP; new connections after that follow the new rules


def connect_as(role: str, **kwargs: Any) -> psycopg.Connection:
    """A connection to the warehouse as ``role``'s login (:func:`login`)."""
    import psycopg

    params = {**pg.conn_params(settings.WAREHOUSE_CONN_ID), **login(role)}
    return psycopg.connect(**params, **kwargs)


# ---- what each role sees: the demo, the steward page, the README --------------------------------------------


def relation_of(g: Governance, role: Role | str, table: str) -> str:
    """The relation ``role`` reads for a published table: the table itself (full access) or its view in the
    role's schema."""
    role = g.roles[role] if isinstance(role, str) else role
    if role.access == "full":
        return table
    return f"{g.schema_role(role).view_schema}.{table.split('.', 1)[1]}"


def show_customer(customer_id: str | None = None) -> str:
    """One customer as each declared role sees it, each read over a connection as that role (so PostgreSQL
    masks and filters it): the PII columns and the subject's key and policy columns."""
    from psycopg import sql

    registry = load_registry()
    g = config(registry)
    subject = registry[g.subject.dataset]
    policy_columns = list(dict.fromkeys(p.column for p in g.row_policies))
    shown = [c for c in subject.columns if c.pii or c.name == g.subject.key or c.name in policy_columns]
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not conn.execute("select to_regclass(%s) is not null", (subject.table,)).fetchone()[0]:
            return f"No customer to show: {subject.table} is not published."
        apply(conn)
        if customer_id is None:  # one every row policy lets through, so every role has something to show
            where = sql.SQL(" and ").join(sql.SQL("{}::text = any(%s)").format(sql.Identifier(c))
                                          for c in policy_columns) if policy_columns else sql.SQL("true")
            values = [[v for p in g.row_policies if p.column == c for v in p.values] for c in policy_columns]
            row = conn.execute(sql.SQL("select {k} from {t} where {w} order by {k} limit 1").format(
                k=sql.Identifier(g.subject.key), t=ident(subject.table), w=where), values).fetchone()
            if row is None:
                return "No customer to show: the subject table is empty or no row passes every row policy."
            customer_id = row[0]
    seen: dict[str, dict[str, str]] = {}
    visible: dict[str, str] = {}
    for role in g.roles.values():
        relation = relation_of(g, role, subject.table)
        try:
            with connect_as(role.name) as conn:
                cur = conn.execute(sql.SQL("select * from {} where {} = %s").format(
                    ident(relation), sql.Identifier(g.subject.key)), (customer_id,))
                row = cur.fetchone()
                names = [d.name for d in cur.description]
                (count,) = conn.execute(sql.SQL("select count(*) from {}").format(ident(relation))).fetchone()
                visible[role.name] = f"{count:,}"
        except Exception as exc:  # noqa: BLE001 - shown as what the role gets
            seen[role.name] = {c.name: f"error: {type(exc).__name__}" for c in shown}
            visible[role.name] = "-"
            continue
        if row is None:
            seen[role.name] = {c.name: "(row not visible)" for c in shown}
            continue
        values = dict(zip(names, row, strict=True))
        seen[role.name] = {c.name: _short(values[c.name]) if c.name in values else "(not visible)" for c in shown}
    roles = list(g.roles)
    width = max(len("customers it reads"), *(len(c.name) for c in shown)) + 3
    cols = [max(len(r), *(len(seen[r][c.name]) for c in shown)) + 2 for r in roles]
    lines = [f"One customer ({g.subject.key} {customer_id}) as each role sees it, each read as that role "
             f"(make psql ROLE=<role> SQL=...):",
             ("column".ljust(width) + "".join(r.ljust(w) for r, w in zip(roles, cols, strict=True))).rstrip()]
    rows = [(c.name + (" *" if c.pii else ""), {r: seen[r][c.name] for r in roles}) for c in shown]
    for name, values in [*rows, ("customers it reads", visible)]:
        lines.append((name.ljust(width) + "".join(values[r].ljust(w) for r, w in zip(roles, cols, strict=True)))
                     .rstrip())
    lines += ["* PII (registry). Each role reads: " + "; ".join(
        f"{r.name} {relation_of(g, r, subject.table)}" for r in g.roles.values())]
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    if re.fullmatch(r"[0-9a-f]{64}", text):
        return text[:10] + "…"  # a SHA-256
    return text if len(text) <= 24 else text[:23] + "…"


def pii_rows(g: Governance, entry: Table) -> list[dict[str, Any]]:
    """The PII a published table holds and how each declared role sees it: one row per PII column, and per
    embedded copy of one in a document (``profile.demographics.age``)."""
    rows = []
    by_name = {c.name: c for c in entry.columns}
    for c in entry.columns:
        if c.pii:
            rows.append({"column": c.name, "type": c.type, "copy_of": None,
                         "rules": {r: rule(g, r, c) for r in g.roles}})
        for path, name in c.embeds.items():
            if by_name[name].pii:
                rows.append({"column": f"{c.name}.{path}", "type": by_name[name].type, "copy_of": name,
                             "rules": {r: rule(g, r, by_name[name]) if rule(g, r, c) == "raw" else rule(g, r, c)
                                       for r in g.roles}})
    return rows


README_BEGIN = "<!-- governance-table: generated by c360.governance.readme_table(); a test keeps it so -->"
README_END = "<!-- end governance-table -->"


def readme_table(registry: Registry | None = None) -> str:
    """The README's table of what each role sees per PII column (every published table of the registry)."""
    registry = registry or load_registry()
    g = config(registry)
    roles = list(g.roles)
    lines = ["| table | PII column | " + " | ".join(f"`{r}`" for r in roles) + " |",
             "|---|---|" + "---|" * len(roles)]
    for e in registry.published():
        for row in pii_rows(g, e):
            lines.append(f"| `{e.table}` | `{row['column']}` | "
                         + " | ".join(RULES[row["rules"][r]] for r in roles) + " |")
    return "\n".join([README_BEGIN, *lines, README_END])
