"""GDPR erasure (the right to be forgotten): a person leaves every published table, batch table and lake file,
and never comes back.

**Who the person is.** A request names one customer id. :func:`resolve` widens it as identity resolution does
(``customer360_job.py``): every customer id of a profile that holds one of the ids, customers sharing a
normalised email or phone, and customers and web visitor ids joined through the visitor map, until nothing is
added. The person is then their customer ids, visitor ids, emails and phones, and the business keys of the rows
other tables link to (``via``: their order ids).

**Which rows are theirs** is declared in the registry, per dataset and per derived output (``erasure:``): a
column holding one of their identifiers (a JSON column: a list of them), or a column holding the business key
of a row of another dataset that is theirs (``via: orders``). A new dataset declares its link; nothing here
names a dataset. The GA export is the one source read as files: a line is the person's when its
``fullVisitorId`` is one of their visitor ids; the visitor map (a CSV) drops the rows naming them.

**Where.** :func:`process` erases, in one warehouse transaction, every published table (history outputs in all
their as-of partitions) and every staging batch table, suppresses their ids and records the counts in the audit
trail; then it rewrites every lake file holding one of their rows (raw, stage, quarantine, the analytics input
snapshots and outputs, the GA landing files and visitor map), one file at a time, each replaced atomically;
then it checks that nothing is left, and the request keeps only a salted hash of the id and the counts.

**Never back.** :func:`suppress` stores salted SHA-256 hashes of their customer and visitor ids in
``governance.erasure_suppression``. The extract (``c360.steps``) leaves suppressed persons' rows in the source
(:func:`extract_filter`: the dataset's links evaluated in the source's SQL, a ``via`` link by joining the linked
dataset's source table there) and drops their GA lines (:func:`landing_filter`), so later extracts, full
refreshes, reruns and backfills never bring them back; derived products read the published tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from c360 import lake, pg, products, settings, warehouse
from c360.registry import Dataset, DerivedOutput, ErasureLink, Registry, load_registry
from c360.warehouse import ident, sql_file

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg import sql

    Entry = Dataset | DerivedOutput

log = logging.getLogger(__name__)

KINDS = ("customer_id", "visitor_id")  # identifiers the registry's links name (``holds``)
# identity resolution joining more customer ids than this is refused: a placeholder email shared by thousands
# of customers would otherwise erase all of them
MAX_CUSTOMER_IDS = 100
LOCK = "c360.erasure"  # one erasure at a time (they rewrite the same lake files)
VISITOR_FIELD = re.compile(rb'"fullVisitorId"\s*:\s*"((?:[^"\\]|\\.)*)"')  # a GA export line's visitor
VISITOR_PATTERN = r'"fullVisitorId"\s*:\s*"(?P<visitor>[^"\\]*)"'  # the same, for Arrow on quarantined lines
VISITOR_MAP_COLUMNS = {"customer_id": "customer_id", "fullVisitorId": "visitor_id"}  # what each CSV column holds


class ErasureRefused(RuntimeError):
    """The request cannot be carried out as asked (unknown id, identity resolution joining too many ids)."""


class ErasureIncomplete(RuntimeError):
    """Rows of the person are still there after the erasure (a run published them meanwhile): rerun it."""


# ---- the person --------------------------------------------------------------------------------------------


@dataclass
class Person:
    """Everything that identifies one person to be erased, and the keys of their linked rows."""

    customer_id: set[str] = field(default_factory=set)
    visitor_id: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    keys: dict[str, set[str]] = field(default_factory=dict)  # dataset → business keys of the person's rows

    def values(self, link: ErasureLink) -> list[str]:
        """What a link's column is matched against."""
        return sorted(getattr(self, link.holds) if link.holds else self.keys.get(link.via, set()))

    def to_json(self) -> str:
        return json.dumps({"customer_id": sorted(self.customer_id), "visitor_id": sorted(self.visitor_id),
                           "emails": sorted(self.emails), "phones": sorted(self.phones),
                           "keys": {k: sorted(v) for k, v in self.keys.items()}})

    @classmethod
    def from_json(cls, data: dict) -> Person:
        return cls(set(data["customer_id"]), set(data["visitor_id"]), set(data["emails"]), set(data["phones"]),
                   {k: set(v) for k, v in data["keys"].items()})

    def summary(self) -> dict[str, int]:
        """How many identifiers of each kind (what the audit trail may say about them)."""
        return {"customer_ids": len(self.customer_id), "visitor_ids": len(self.visitor_id),
                "emails": len(self.emails), "phones": len(self.phones),
                **{f"{name}_keys": len(keys) for name, keys in sorted(self.keys.items())}}


def normalise_email(value: str | None) -> str | None:
    """As identity resolution compares emails: trimmed, lower case, only with an @."""
    e = (value or "").strip(" ").lower()
    return e if "@" in e else None


def normalise_phone(value: str | None) -> str | None:
    """As identity resolution compares phones: the last 10 digits, when there are 7 or more."""
    digits = re.sub(r"[^0-9]", "", value or "")
    return digits[-10:] if len(digits) >= 7 else None


# ---- salt and hashes ---------------------------------------------------------------------------------------


def bootstrap(conn: psycopg.Connection) -> None:
    warehouse.bootstrap(conn)
    conn.execute(sql_file("erasure/bootstrap.sql"))


def salt(conn: psycopg.Connection) -> str:
    """The salt of every hash of an erased person's id (created on first use, owner-only)."""
    import secrets

    bootstrap(conn)
    return conn.execute(sql_file("erasure/salt.sql"), {"candidate": secrets.token_hex(32)}).fetchone()[0]


def digest(salt_: str, value: str) -> str:
    """Salted SHA-256 of an id, hex: what the audit trail and the suppression list hold (the extracts compute
    the same in SQL: ``encode(sha256(convert_to(salt || id, 'UTF8')), 'hex')``)."""
    return hashlib.sha256(f"{salt_}{value}".encode()).hexdigest()


# ---- links as SQL and as Arrow masks ------------------------------------------------------------------------


def _column_type(entry: Entry, name: str) -> str:
    return next(c.type for c in entry.columns if c.name == name)


def linked(entry: Entry, person: Person, columns: set[str] | None = None) -> tuple[sql.Composable | None, dict]:
    """The SQL condition "the row is the person's" over a warehouse table of ``entry`` (any link matches), and
    its bound values; None when no link applies (no link column in ``columns``, or nothing to match)."""
    from psycopg import sql

    parts, params = [], {}
    for n, link in enumerate(entry.erasure):
        values = person.values(link)
        if not values or (columns is not None and link.column not in columns):
            continue
        name = f"erasure_{n}"
        params[name] = values
        col = sql.Identifier(link.column)
        if _column_type(entry, link.column) == "json":
            parts.append(sql.SQL("{} ?| %({})s::text[]").format(col, sql.SQL(name)))
        elif link.before:
            params[f"{name}_sep"] = link.before
            parts.append(sql.SQL("split_part({}, %({})s, 1) = any(%({})s::text[])").format(
                col, sql.SQL(f"{name}_sep"), sql.SQL(name)))
        else:
            parts.append(sql.SQL("{} = any(%({})s::text[])").format(col, sql.SQL(name)))
    if not parts:
        return None, {}
    return sql.SQL("({})").format(sql.SQL(" or ").join(parts)), params


def arrow_mask(table: pa.Table, entry: Entry | None, person: Person, ga_lines: bool = False) -> pa.Array | None:
    """Which rows of ``table`` (a lake file of ``entry``: raw text, typed stage, quarantine, snapshot or output)
    are the person's; None when none of the links' columns is in the file. ``ga_lines``: the file holds GA
    export lines in a ``value`` column (the quarantine of an export source)."""
    import functools

    import pyarrow as pa
    import pyarrow.compute as pc

    masks = []
    names = set(table.column_names)
    for link in entry.erasure if entry is not None else ():
        values = person.values(link)
        if link.column not in names or not values:
            continue
        col = table[link.column]
        if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.string())
        if _column_type(entry, link.column) == "json":  # a JSON list: the id as a JSON string, quotes included
            m = functools.reduce(pc.or_, [pc.match_substring(col, json.dumps(v, ensure_ascii=False))
                                          for v in values])
        elif link.before:
            m = pc.is_in(pc.list_element(pc.split_pattern(col, link.before, max_splits=1), 0),
                         value_set=pa.array(values, pa.string()))
        else:
            m = pc.is_in(col, value_set=pa.array(values, pa.string()))
        masks.append(pc.fill_null(m, False))
    if ga_lines and "value" in names and person.visitor_id:
        visitor = pc.struct_field(pc.extract_regex(table["value"], VISITOR_PATTERN), "visitor")
        masks.append(pc.fill_null(pc.is_in(visitor, value_set=pa.array(sorted(person.visitor_id))), False))
    for column, kind in VISITOR_MAP_COLUMNS.items() if entry is None else ():
        if column in names and getattr(person, kind):
            masks.append(pc.fill_null(pc.is_in(pc.cast(table[column], pa.string()),
                                               value_set=pa.array(sorted(getattr(person, kind)))), False))
    return functools.reduce(pc.or_, masks) if masks else None


def line_visitor(line: bytes) -> str | None:
    """The ``fullVisitorId`` of a GA export line (also of a line cut short after it), else None."""
    m = VISITOR_FIELD.search(line)
    if not m:
        return None
    try:
        return json.loads(b'"' + m.group(1) + b'"')
    except ValueError:
        return m.group(1).decode(errors="replace")


def filter_lines(data: bytes, is_theirs: Callable[[bytes], bool]) -> tuple[bytes, int]:
    """``data`` (JSON lines) without the lines ``is_theirs``; and how many went."""
    kept, dropped = [], 0
    for line in data.splitlines(keepends=True):
        if line.strip() and is_theirs(line):
            dropped += 1
        else:
            kept.append(line)
    return b"".join(kept), dropped


# ---- who the person is -------------------------------------------------------------------------------------


def _visitor_maps(registry: Registry) -> list[str]:
    """The visitor maps (``source.lookup`` of an export source: fullVisitorId,customer_id CSV) in the landing zone."""
    return [f"{settings.landing_uri()}/{ds.source.path}/{ds.source.lookup}"
            for ds in registry.datasets.values() if ds.source.system == "ga_export" and ds.source.lookup]


def _read_visitor_map(uri: str) -> list[tuple[str | None, str | None]]:
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    p = lake.path(uri)
    if not p.exists():
        return []
    table = pacsv.read_csv(io.BytesIO(p.read_bytes()), convert_options=pacsv.ConvertOptions(
        column_types={"fullVisitorId": pa.string(), "customer_id": pa.string()}))
    if not {"fullVisitorId", "customer_id"} <= set(table.column_names):
        return []
    return list(zip(table["fullVisitorId"].to_pylist(), table["customer_id"].to_pylist(), strict=True))


def resolve(conn: psycopg.Connection, customer_id: str, registry: Registry | None = None) -> Person:
    """The person behind ``customer_id``, as identity resolution joins them, with the keys of their linked rows
    (read from the warehouse and the lake, so rows only the lake still holds are found too)."""
    registry = registry or load_registry()
    person = Person(customer_id={customer_id})
    has_profile = warehouse.exists(conn, "c360.customer_profile")
    has_customer = warehouse.exists(conn, "c360.customer")
    visitor_map = [row for uri in _visitor_maps(registry) for row in _read_visitor_map(uri)]
    norm_emails: set[str] = set()
    norm_phones: set[str] = set()
    for _ in range(50):
        before = (len(person.customer_id), len(person.visitor_id), len(norm_emails), len(norm_phones))
        ids, visitors = sorted(person.customer_id), sorted(person.visitor_id)
        if has_profile:
            for cids, emails, phones, devices in conn.execute(sql_file("erasure/profiles.sql"),
                                                              {"customer_ids": ids, "visitor_ids": visitors}):
                person.customer_id |= set(cids or [])
                person.visitor_id |= set(devices or [])
                norm_emails |= set(emails or [])
                norm_phones |= set(phones or [])
        if has_customer:
            for cid, email, phone in conn.execute(sql_file("erasure/customers.sql"), {
                    "customer_ids": ids, "emails": sorted(norm_emails), "phones": sorted(norm_phones)}):
                person.customer_id.add(cid)
                for raw, norm, into, norms in ((email, normalise_email(email), person.emails, norm_emails),
                                               (phone, normalise_phone(phone), person.phones, norm_phones)):
                    if raw:
                        into.add(raw)
                    if norm:
                        norms.add(norm)
        for visitor, cid in visitor_map:
            if cid in person.customer_id and visitor:
                person.visitor_id.add(visitor)
            elif visitor in person.visitor_id and cid:
                person.customer_id.add(cid)
        if len(person.customer_id) > MAX_CUSTOMER_IDS:
            raise ErasureRefused(f"identity resolution joins more than {MAX_CUSTOMER_IDS} customer ids to the "
                                 f"requested one: review the customers sharing its email, phone or visitor id")
        if (len(person.customer_id), len(person.visitor_id), len(norm_emails), len(norm_phones)) == before:
            break
    person.emails |= norm_emails
    person.phones |= norm_phones
    for name in _via_targets(registry):  # in link order: a target's own via keys are known first
        person.keys[name] = _keys(conn, registry, registry.datasets[name], person)
    return person


def _via_targets(registry: Registry) -> list[str]:
    """Datasets other entries link to (``via``), each after the datasets it links to itself."""
    entries = [*registry.datasets.values(), *(o for d in registry.derived.values() for o in d.outputs)]
    wanted = {link.via for e in entries for link in e.erasure if link.via}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for link in registry.datasets[name].erasure:
            if link.via:
                visit(link.via)
        ordered.append(name)

    for name in sorted(wanted):
        visit(name)
    return ordered


def _keys(conn: psycopg.Connection, registry: Registry, ds: Dataset, person: Person) -> set[str]:
    """Business keys of the person's rows of ``ds``: its published table, its batch tables, its lake files."""
    import pyarrow.parquet as pq
    from psycopg import sql

    (key,) = ds.business_key
    keys: set[str] = set()
    tables = [(ds.table, None)] if warehouse.exists(conn, ds.table) else []
    tables += [(t, cols) for t, entry, cols in staging_tables(conn, registry) if entry is ds]
    for table, cols in tables:
        condition, params = linked(ds, person, set(cols) if cols else None)
        if condition is not None and (cols is None or key in cols):
            keys |= {k for (k,) in conn.execute(sql_file("erasure/keys.sql", table=ident(table), linked=condition,
                                                         key=sql.Identifier(key)), params)}
    for f in lake_files(registry):
        if f.entry is not ds or f.kind != "parquet":
            continue
        with lake.path(f.uri).open("rb") as src:
            pf = pq.ParquetFile(src)
            columns = _link_columns(f, pf.schema_arrow.names)
            if not columns or key not in pf.schema_arrow.names:
                continue
            table = pf.read(columns=sorted({*columns, key}))
        mask = arrow_mask(table, ds, person, ga_lines=f.ga)
        if mask is not None:
            keys |= {k for k in table.filter(mask)[key].to_pylist() if k is not None}
    return {str(k) for k in keys}


# ---- the warehouse ------------------------------------------------------------------------------------------


def entries(registry: Registry) -> list[Entry]:
    """Every published table's entry that declares how a row belongs to a person."""
    return [e for e in (*registry.datasets.values(), *(o for d in registry.derived.values() for o in d.outputs))
            if e.erasure]


def batch_owners(registry: Registry) -> dict[str, Entry]:
    """The owner part of a batch table's name (``staging.<owner>__<interval>``) → the entry it is like."""
    owners: dict[str, Entry] = {}
    for ds in registry.datasets.values():
        owners[ds.dag_id] = ds
        if ds.full_refresh_dag_id:
            owners[ds.full_refresh_dag_id] = ds
    for d in registry.derived.values():
        for o in d.outputs:
            owners[f"{d.name}_{o.name}"] = o
    return owners


def staging_tables(conn: psycopg.Connection, registry: Registry) -> list[tuple[str, Entry | None, list[str]]]:
    """Every table of ``staging`` with the registry entry it is a batch of (None: unknown) and its columns."""
    owners = batch_owners(registry)
    return [(f"staging.{name}", owners.get(name.rsplit("__", 1)[0]), columns)
            for name, columns in conn.execute(sql_file("erasure/staging_tables.sql"))]


def _table_columns(conn: psycopg.Connection, table: str) -> set[str]:
    schema, name = table.split(".", 1)
    return {c for (c,) in conn.execute(sql_file("erasure/table_columns.sql"), {"schema": schema, "table": name})}


def warehouse_targets(conn: psycopg.Connection, registry: Registry) -> list[tuple[str, Entry, set[str]]]:
    """(table, entry, columns) of every published and batch table that may hold a person's rows."""
    targets = [(e.table, e, _table_columns(conn, e.table)) for e in entries(registry) if warehouse.exists(conn, e.table)]
    for table, entry, columns in staging_tables(conn, registry):
        if entry is None:
            log.warning("%s is no batch table of any registry entry: the erasure cannot tell its rows' owners", table)
        elif entry.erasure:
            targets.append((table, entry, set(columns)))
    return targets


def erase_warehouse(conn: psycopg.Connection, person: Person, registry: Registry,
                    count_only: bool = False) -> dict[str, int]:
    """Delete the person's rows from every published table (all as-of partitions) and batch table, in the
    caller's transaction; rows per table. ``count_only``: count them instead (the check after an erasure)."""
    counts = {}
    for table, entry, columns in warehouse_targets(conn, registry):
        condition, params = linked(entry, person, columns)
        if condition is None:
            continue
        if count_only:
            (n,) = conn.execute(sql_file("erasure/count.sql", table=ident(table), linked=condition), params).fetchone()
        else:
            n = conn.execute(sql_file("erasure/delete.sql", table=ident(table), linked=condition), params).rowcount
        counts[table] = n
    return counts


def lock_publishes(conn: psycopg.Connection, registry: Registry) -> None:
    """Take the advisory locks the publishes take (each published table; each derived product), in one order:
    no publish runs while the erasure transaction does, and none waits on it in between."""
    names = sorted({*(e.table for e in entries(registry)), *registry.derived})
    for name in names:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (name,))


# ---- the lake -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LakeFile:
    uri: str
    layer: str  # raw, stage, quarantine, analytics, landing
    owner: str  # the dataset, or the derived product's part (customer_360/inputs/orders)
    entry: Any  # the Dataset or DerivedOutput whose links apply; None: a visitor map
    kind: str  # parquet, lines (GA JSON), csv (a visitor map)
    ga: bool  # holds GA export lines (raw and landing files; the quarantine's value column)


def _kind(name: str) -> str | None:
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".json"):
        return "lines"
    if name.endswith(".csv"):
        return "csv"
    return None  # _SUCCESS, .crc checksums, Spark's manifest text: no rows


def _files(uri: str) -> Iterator[tuple[str, str]]:
    """(uri, path below ``uri``) of every file under ``uri``, hidden ones (a rewrite's temporary file) aside."""
    p = lake.path(uri)
    if not p.exists():
        return
    for f in sorted(p.rglob("*"), key=str):
        rel = str(f)[len(str(p)):].lstrip("/")
        if f.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            yield str(f), rel


def lake_files(registry: Registry) -> Iterator[LakeFile]:
    """Every lake file that may hold a person's rows, with the registry entry whose links say which."""
    for ds in registry.datasets.values():
        ga = ds.source.system == "ga_export"
        if not ds.erasure and not ga:
            continue
        for layer in ("raw", "stage", "quarantine"):
            for uri, rel in _files(lake.uri(layer, ds.name)):
                if kind := _kind(rel):
                    yield LakeFile(uri, layer, ds.name, ds, kind, ga and (layer != "stage"))
        if ga:
            landing = f"{settings.landing_uri()}/{ds.source.path}"
            for uri, rel in _files(landing):
                if kind := _kind(rel):
                    yield LakeFile(uri, "landing", ds.name, ds if kind != "csv" else None, kind, True)
    for d in registry.derived.values():
        outputs = {o.name: o for o in d.outputs}
        for uri, rel in _files(lake.uri("analytics", d.name)):
            parts = rel.split("/")  # interval=<as-of>/inputs|outputs/<name>/<file...>
            kind = _kind(rel)
            if len(parts) < 4 or kind is None:
                continue
            part, name = parts[1], parts[2]
            entry = registry.datasets.get(name) if part == "inputs" else outputs.get(name)
            if entry is None and not (part == "inputs" and kind == "csv"):  # the visitor map's snapshot
                continue
            ga = part == "inputs" and entry is not None and entry.source.system == "ga_export"
            if entry is not None and not entry.erasure and not ga:  # product, brand: no row is anyone's
                continue
            yield LakeFile(uri, "analytics", f"{d.name}/{part}/{name}", entry if kind != "csv" else None, kind, ga)


def _link_columns(f: LakeFile, schema_names: list[str]) -> list[str]:
    wanted = {link.column for link in f.entry.erasure} if f.entry is not None else set(VISITOR_MAP_COLUMNS)
    if f.ga:
        wanted.add("value")
    return [n for n in schema_names if n in wanted]


def _replace(uri: str, data: bytes) -> None:
    """Replace a lake file's content atomically: a reader sees the old file or the new one, never a part.

    Local: a hidden temporary file in the same folder, synced, renamed over the file; Hadoop's checksum of
    the old content (``.<name>.crc``, beside Spark's files) goes, or Spark would refuse the new one. Object
    storage: one PUT replaces an object atomically."""
    if not lake.is_local(uri):
        lake.path(uri).write_bytes(data)
        return
    target = lake.local_path(uri)
    lake.owner_only()
    tmp = target.with_name(f".{target.name}.erasure-tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    target.with_name(f".{target.name}.crc").unlink(missing_ok=True)


def _erase_parquet(f: LakeFile, person: Person, dry_run: bool) -> int:
    import io

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with lake.path(f.uri).open("rb") as src:
        pf = pq.ParquetFile(src)
        columns = _link_columns(f, pf.schema_arrow.names)
        if not columns:
            return 0
        mask = arrow_mask(pf.read(columns=columns), f.entry, person, ga_lines=f.ga)
        theirs = (pc.sum(mask).as_py() or 0) if mask is not None else 0
        if not theirs or dry_run:
            return theirs
        table = pf.read().filter(pc.invert(mask))
        int96 = any(pf.schema.column(i).physical_type == "INT96" for i in range(len(pf.schema)))
        compression = pf.metadata.row_group(0).column(0).compression.lower() if pf.metadata.num_row_groups else None
    buf = io.BytesIO()
    pq.write_table(table, buf, use_deprecated_int96_timestamps=int96,
                   compression=compression if compression in ("snappy", "gzip", "zstd", "lz4", "brotli") else "snappy")
    _replace(f.uri, buf.getvalue())
    return theirs


def _erase_lines(f: LakeFile, person: Person, dry_run: bool) -> int:
    data = lake.path(f.uri).read_bytes()
    kept, theirs = filter_lines(data, lambda line: line_visitor(line) in person.visitor_id)
    if theirs and not dry_run:
        _replace(f.uri, kept)
    return theirs


def _erase_csv(f: LakeFile, person: Person, dry_run: bool) -> int:
    """A visitor map: rows naming one of the person's customer or visitor ids go (header and the rest kept)."""
    import csv
    import io

    text = lake.path(f.uri).read_bytes().decode()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    checks = [(i, getattr(person, VISITOR_MAP_COLUMNS[name])) for i, name in enumerate(header)
              if name in VISITOR_MAP_COLUMNS]
    keep = [r for r in body if not any(i < len(r) and r[i] in ids for i, ids in checks)]
    theirs = len(body) - len(keep)
    if theirs and not dry_run:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *keep])
        _replace(f.uri, out.getvalue().encode())
    return theirs


def erase_lake(person: Person, registry: Registry, dry_run: bool = False) -> dict[str, dict[str, int]]:
    """Rewrite every lake file holding rows of the person without them; per layer and owner, the rows removed
    and files rewritten. ``dry_run``: count only (the check after an erasure)."""
    handlers = {"parquet": _erase_parquet, "lines": _erase_lines, "csv": _erase_csv}
    counts: dict[str, dict[str, int]] = {}
    for f in lake_files(registry):
        theirs = handlers[f.kind](f, person, dry_run)
        if theirs:
            c = counts.setdefault(f"{f.layer}/{f.owner}", {"rows": 0, "files": 0})
            c["rows"] += theirs
            c["files"] += 1
            log.info("%s %s of the person's rows in %s", "found" if dry_run else "removed", theirs, f.uri)
    return counts


# ---- suppression --------------------------------------------------------------------------------------------


def suppress(conn: psycopg.Connection, person: Person, request_id: int, salt_: str) -> int:
    """Add the person's customer and visitor ids, hashed, to the suppression list; how many were new."""
    added = 0
    for kind in KINDS:
        for value in sorted(getattr(person, kind)):
            added += conn.execute(sql_file("erasure/suppress.sql"), {
                "kind": kind, "id_hash": digest(salt_, value), "request_id": request_id}).rowcount
    return added


def suppressed() -> tuple[str, dict[str, list[str]]]:
    """(salt, hashed ids per kind) of everyone erased; no salt and nothing when nobody ever was."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        if not warehouse.exists(conn, "governance.erasure_suppression"):
            return "", {}
        hashes = dict(conn.execute(sql_file("erasure/suppressed.sql")).fetchall())
        if not hashes:
            return "", {}
        return salt(conn), hashes


def _hashed(column: sql.Composable, before: str | None, salt_param: str, sep_param: str) -> sql.Composable:
    from psycopg import sql

    value = sql.SQL("split_part({}::text, %({})s, 1)").format(column, sql.SQL(sep_param)) if before else \
        sql.SQL("{}::text").format(column)
    return sql.SQL("encode(sha256(convert_to(%({})s::text || {}, 'UTF8')), 'hex')").format(sql.SQL(salt_param), value)


def source_condition(ds: Dataset, registry: Registry, table: sql.Composable, hashes: dict[str, list[str]],
                     params: dict, depth: int = 0) -> sql.Composable | None:
    """SQL over ``table`` (a row of ``ds``'s source table) true when the row is a suppressed person's: a link's
    column hashes to a suppressed id, or (``via``) the linked dataset's source row it references is one. Values
    go into ``params``."""
    from psycopg import sql

    parts = []
    for n, link in enumerate(ds.erasure):
        column = sql.SQL("{}.{}").format(table, sql.Identifier(link.column))
        if link.holds:
            if not hashes.get(link.holds):
                continue
            sep = f"erasure_sep_{depth}_{n}"
            if link.before:
                params[sep] = link.before
            parts.append(sql.SQL("{} = any(%({})s::text[])").format(
                _hashed(column, link.before, "erasure_salt", sep), sql.SQL(f"erasure_{link.holds}")))
        else:
            target = registry.datasets[link.via]
            alias = sql.Identifier(f"erasure_via_{depth}_{n}")
            inner = source_condition(target, registry, alias, hashes, params, depth + 1)
            if inner is None:
                continue
            parts.append(sql.SQL("exists (select 1 from {} as {} where {}.{} = {} and {})").format(
                ident(target.source.table), alias, alias, sql.Identifier(target.business_key[0]), column, inner))
    return sql.SQL("({})").format(sql.SQL(" or ").join(parts)) if parts else None


def extract_filter(ds: Dataset, registry: Registry | None = None) -> tuple[sql.Composable, dict]:
    """The condition an extract keeps a source row by (not a suppressed person's), with its bound values;
    ``true`` when nobody is suppressed or the dataset declares no link."""
    from psycopg import sql

    if not ds.erasure:
        return sql.SQL("true"), {}
    salt_, hashes = suppressed()
    params: dict = {}
    condition = source_condition(ds, registry or load_registry(), ident(ds.source.table), hashes, params) \
        if hashes else None
    if condition is None:
        return sql.SQL("true"), {}
    params.update({"erasure_salt": salt_, **{f"erasure_{k}": v for k, v in hashes.items()}})
    return sql.SQL("({} is not true)").format(condition), params


def landing_filter(ds: Dataset) -> Callable[[bytes], bool] | None:
    """For an export source: whether a GA line is a suppressed person's (its visitor, or the customer the
    visitor map names for it, is suppressed); None when nobody is suppressed."""
    salt_, hashes = suppressed()
    visitors, customers = set(hashes.get("visitor_id", ())), set(hashes.get("customer_id", ()))
    if not visitors and not customers:
        return None
    theirs = set()
    for uri in ([f"{settings.landing_uri()}/{ds.source.path}/{ds.source.lookup}"] if ds.source.lookup else []):
        theirs |= {v for v, c in _read_visitor_map(uri) if v and c and digest(salt_, c) in customers}

    def is_suppressed(line: bytes) -> bool:
        visitor = line_visitor(line)
        return visitor is not None and (visitor in theirs or digest(salt_, visitor) in visitors)

    return is_suppressed


# ---- requests -----------------------------------------------------------------------------------------------


def request(customer_id: str, requested_by: str | None = None) -> int:
    """File an erasure request (the gdpr_erasure DAG, or the daily housekeeping, carries it out); its id."""
    customer_id = customer_id.strip()
    if not customer_id:
        raise ErasureRefused("an erasure request needs a customer id")
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        s = salt(conn)
        (rid,) = conn.execute(sql_file("erasure/request_insert.sql"), {
            "customer_id": customer_id, "subject_hash": digest(s, customer_id),
            "requested_by": requested_by}).fetchone()
    log.info("erasure request %s filed", rid)
    return rid


def pending() -> list[int]:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        bootstrap(conn)
        return [rid for (rid,) in conn.execute(sql_file("erasure/request_pending.sql"))]


def process(request_id: int, run_id: str | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """Carry out one request: resolve the person, erase the warehouse (with the suppression and its audit
    entries, one transaction), rewrite the lake, check nothing is left, close the request. Idempotent: a rerun
    of an unfinished request resumes with the person it resolved. One erasure at a time (an advisory lock)."""
    registry = registry or load_registry()
    with pg.connect(settings.WAREHOUSE_CONN_ID) as lock_conn:
        lock_conn.autocommit = True
        lock_conn.execute("select pg_advisory_lock(hashtext(%s))", (LOCK,))
        try:
            return _process(request_id, run_id, registry)
        except ErasureRefused as e:
            _refuse(request_id, str(e))
            raise
        finally:
            lock_conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK,))


def _refuse(request_id: int, reason: str) -> None:
    """Record a refusal on the request (if there is one) and in the audit trail: nothing was erased."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        bootstrap(conn)
        found = conn.execute(sql_file("erasure/request_get.sql"), {"id": request_id}).fetchone()
        if found is None or found[2] == "done":
            return
        conn.execute(sql_file("erasure/request_refused.sql"),
                     {"id": request_id, "counts": json.dumps({"refused": reason})})
        warehouse.audit(conn, "erasure", f"erasure_request:{request_id}", 0,
                        detail={"request": request_id, "subject_hash": found[1], "refused": reason})
    log.warning("erasure request %s refused: %s", request_id, reason)


def _process(request_id: int, run_id: str | None, registry: Registry) -> dict[str, Any]:
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        salt_ = salt(conn)
        row = conn.execute(sql_file("erasure/request_get.sql"), {"id": request_id}).fetchone()
        if row is None:
            raise ErasureRefused(f"no erasure request {request_id}")
        customer_id, subject_hash, status, identifiers = row
        if status in ("done", "refused"):
            log.info("erasure request %s is %s already", request_id, status)
            return {"request": request_id, "status": status}
        person = Person.from_json(identifiers) if identifiers else resolve(conn, customer_id, registry)
    detail = {"request": request_id, "subject_hash": subject_hash}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:  # one transaction: all of it, or nothing
        lock_publishes(conn, registry)
        new = suppress(conn, person, request_id, salt_)
        tables = erase_warehouse(conn, person, registry)
        for table, rows in tables.items():
            if rows:
                warehouse.audit(conn, "erasure", table, rows, detail={**detail, "layer": "warehouse"})
        conn.execute(sql_file("erasure/request_erasing.sql"),
                     {"id": request_id, "identifiers": person.to_json(), "run_id": run_id})
        # the derived products' incremental states mirror the inputs (the person's rows too): forgotten, so
        # the next runs rebuild from the erased tables; their folders deleted below
        stateful = products.forget_states(conn)
    for d in stateful:
        products.drop_states(d)
    log.info("erasure request %s: %s rows removed from the warehouse (%s ids suppressed)", request_id,
             sum(tables.values()), new)
    files = erase_lake(person, registry)
    left = check(person, registry)
    if left:
        # a run published or wrote the person's rows (extracted before the suppression) meanwhile: once more
        with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
            lock_publishes(conn, registry)
            again = erase_warehouse(conn, person, registry)
        for table, rows in again.items():
            tables[table] = tables.get(table, 0) + rows
        for where, c in erase_lake(person, registry).items():
            files.setdefault(where, {"rows": 0, "files": 0})
            files[where] = {k: files[where][k] + c[k] for k in c}
        left = check(person, registry)
        if left:
            raise ErasureIncomplete(f"erasure request {request_id}: rows of the person are still there: {left}; "
                                    f"rerun the task (the request stays open)")
    counts = {"warehouse": {t: n for t, n in sorted(tables.items()) if n},
              "lake": dict(sorted(files.items())), "identifiers": person.summary(), "suppressed_new": new}
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        for where, c in sorted(files.items()):
            warehouse.audit(conn, "erasure", f"lake:{where}", c["rows"],
                            detail={**detail, "layer": where.split("/", 1)[0], "files_rewritten": c["files"]})
        total = sum(tables.values()) + sum(c["rows"] for c in files.values())
        warehouse.audit(conn, "erasure", f"erasure_request:{request_id}", total, detail={**detail, **counts})
        conn.execute(sql_file("erasure/request_done.sql"),
                     {"id": request_id, "counts": json.dumps(counts), "run_id": run_id})
    log.info("erasure request %s done: %s", request_id, counts)
    return {"request": request_id, "status": "done", "rows": total, **counts}


def check(person: Person, registry: Registry) -> dict[str, int]:
    """Rows of the person still in the warehouse or the lake (empty: none)."""
    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        left = {t: n for t, n in erase_warehouse(conn, person, registry, count_only=True).items() if n}
    left.update({f"lake:{w}": c["rows"] for w, c in erase_lake(person, registry, dry_run=True).items()})
    return left


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m c360.erasure", description="GDPR erasure requests")
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("request", help="file an erasure request for a customer id (processed by gdpr_erasure)")
    req.add_argument("customer_id")
    sub.add_parser("pending", help="list the requests not done yet")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings.apply_runtime_env()
    if args.command == "request":
        print(request(args.customer_id))
    else:
        print("\n".join(map(str, pending())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
