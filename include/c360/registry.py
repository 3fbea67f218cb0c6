"""The typed dataset registry: ``datasets.yaml`` parsed into frozen pydantic models.

Validation happens when DAG files are parsed: an unknown key, a business key that is not a column, a
schedule that is no cron expression or a contract file that does not exist fails parsing with a message
naming the dataset and the field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from c360 import settings

REGISTRY_FILE = Path(__file__).with_name("datasets.yaml")

ColumnType = Literal["string", "int", "bigint", "double", "decimal", "timestamp", "date", "boolean", "json"]

# How a governed role sees a PII column (c360.governance writes the SQL of each): as it is, as the SHA-256 of a
# secret salt and the value (JSON arrays element by element), not at all, or as a range; a range applies to the
# column types listed.
MaskRule = Literal["raw", "sha256", "hidden", "age_range", "income_range"]
RULE_TYPES: dict[str, frozenset[str]] = {
    "age_range": frozenset({"int", "bigint"}),
    "income_range": frozenset({"string", "int", "bigint", "double", "decimal"}),
}


@dataclass(frozen=True)
class TypeMap:
    """What a registry column type is in each system that stores or checks it (the one type map)."""

    pg: str  # PostgreSQL column type of the published and batch tables
    soda: str  # the data_type Soda's schema check reads back from PostgreSQL's catalog
    spark: str  # the Spark SQL type the stage job casts raw text to
    arrow: tuple  # the Arrow type Parquet is cast to before the COPY: a pyarrow type factory and its arguments


TYPES: dict[str, TypeMap] = {
    "string": TypeMap("text", "text", "string", ("string",)),
    "int": TypeMap("integer", "integer", "int", ("int32",)),
    "bigint": TypeMap("bigint", "bigint", "bigint", ("int64",)),
    "double": TypeMap("double precision", "double precision", "double", ("float64",)),
    "decimal": TypeMap("numeric(18, 2)", "numeric", "decimal(18,2)", ("decimal128", 18, 2)),  # money
    "timestamp": TypeMap("timestamp", "timestamp without time zone", "timestamp_ntz", ("timestamp", "us")),
    "date": TypeMap("date", "date", "date", ("date32",)),
    "boolean": TypeMap("boolean", "boolean", "boolean", ("bool_",)),
    "json": TypeMap("jsonb", "jsonb", "string", ("string",)),  # a JSON document, written as its text
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: ColumnType
    nullable: bool = True
    pii: bool = False
    description: str = ""
    # a condition the published table enforces on the column, as SQL after the column's name
    # (e.g. "between 1 and 5"); the registry is code, reviewed like the SQL files
    check: str | None = None
    # governed role → how it sees this PII column, where not its role's default (governance.roles.<r>.pii)
    mask: dict[str, MaskRule] = {}
    # a JSON document column: where it holds copies of other columns of its table (dotted path → column); a
    # governed role sees each copy as it sees that column, so the document never shows what the column hides
    embeds: dict[str, str] = {}

    @model_validator(mode="after")
    def _governance(self) -> Column:
        if self.mask and not self.pii:
            raise ValueError("mask is for PII columns: set pii: true")
        for role, rule in self.mask.items():
            if rule in RULE_TYPES and self.type not in RULE_TYPES[rule]:
                raise ValueError(f"mask.{role}: {rule} applies to {sorted(RULE_TYPES[rule])} columns, "
                                 f"not {self.type}")
        if self.embeds and self.type != "json":
            raise ValueError("embeds is for json columns (a document holding copies of other columns)")
        bad = [p for p in self.embeds if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", p)]
        if bad:
            raise ValueError(f"embeds: {bad} are not dotted paths of JSON keys")
        return self

    @property
    def types(self) -> TypeMap:
        return TYPES[self.type]

    @property
    def pg_type(self) -> str:
        return self.types.pg

    @property
    def arrow_type(self):
        import pyarrow as pa

        factory, *args = self.types.arrow
        return getattr(pa, factory)(*args)


def spark_columns(columns: tuple[Column, ...] | list[Column]) -> list[dict]:
    """The columns as the Spark jobs take them: name, Spark SQL type, nullability."""
    return [{"name": c.name, "type": c.types.spark, "nullable": c.nullable} for c in columns]


def arrow_schema(columns: tuple[Column, ...] | list[Column]):
    """The Arrow schema of registry columns (every Parquet read or write of a registry table is cast to it)."""
    import pyarrow as pa

    return pa.schema([(c.name, c.arrow_type) for c in columns])


class Cadence(_Strict):
    schedule: str
    full_refresh_schedule: str | None = None

    @field_validator("schedule", "full_refresh_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value


class Source(_Strict):
    system: Literal["redshift", "oltp", "ga_export"]
    conn_id: str | None = None
    table: str | None = None
    path: str | None = None
    lookup: str | None = None  # a reference file under ``path`` the transform joins (GA: the visitor map)
    watermark: str

    @model_validator(mode="after")
    def _shape(self) -> Source:
        if self.system == "ga_export":
            if not self.path:
                raise ValueError("a ga_export source needs 'path' (folder under the landing zone)")
        elif not (self.conn_id and self.table):
            raise ValueError(f"a {self.system} source needs 'conn_id' and 'table'")
        return self


class Transform(_Strict):
    spark_job: str


class Output(_Strict):
    table: str = Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
    # secondary indexes of the published table (each a column list), for the queries the contract runs on it
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def schema_name(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.table.split(".", 1)[1]


class ErasureLink(_Strict):
    """How a row belongs to a person, for the GDPR erasure (``c360.erasure``): ``column`` holds one of the
    person's identifiers (``holds``: a customer id, or a web visitor id), or the business key of a row of another
    dataset that belongs to the person (``via``: e.g. a line item's order_id, an order of the person's). A JSON
    column holds a list of identifiers (the profile's customer_ids); ``before`` reads the identifier as the text
    before that separator (web sessions: ``<visitor id>-<visit id>``)."""

    column: str
    holds: Literal["customer_id", "visitor_id"] | None = None
    via: str | None = None
    before: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_link(self) -> ErasureLink:
        if (self.holds is None) == (self.via is None):
            raise ValueError(f"erasure link on {self.column!r}: name exactly one of 'holds' (an identifier of the "
                             f"person) or 'via' (a dataset whose rows belong to the person)")
        if self.before is not None and self.holds is None:
            raise ValueError(f"erasure link on {self.column!r}: 'before' goes with 'holds'")
        return self


def _check_erasure(columns: tuple[Column, ...], links: tuple[ErasureLink, ...], *, json_lists: bool) -> None:
    """Every erasure link names a declared column of a type it can be matched in; PII needs a link."""
    by_name = {c.name: c for c in columns}
    for link in links:
        column = by_name.get(link.column)
        if column is None:
            raise ValueError(f"erasure names column {link.column!r}, which is not declared")
        allowed = ("string", "json") if json_lists and link.holds else ("string",)
        if column.type not in allowed:
            raise ValueError(f"erasure: column {link.column!r} is {column.type}; a link is matched on "
                             f"{' or '.join(allowed)} columns")
        if column.type == "json" and link.before:
            raise ValueError(f"erasure: column {link.column!r} is a JSON list; 'before' reads text")
    pii = [c.name for c in columns if c.pii]
    if pii and not links:
        raise ValueError(f"columns {pii} are PII but no erasure link says how a row belongs to a person "
                         f"(erasure: [{{column: ..., holds: customer_id}}] or [{{column: ..., via: <dataset>}}])")


def _check_columns(columns: tuple[Column, ...], references: list[tuple[str, tuple[str, ...]]]) -> None:
    """No column declared twice; every column a field names (``(field, names)``) is declared."""
    names = [c.name for c in columns]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate columns {sorted(dupes)}")
    references = [*references, *((f"columns.{c.name}.embeds", tuple(c.embeds.values())) for c in columns)]
    for field, cols in references:
        missing = [c for c in cols if c not in names]
        if missing:
            raise ValueError(f"{field} names columns that are not declared: {missing}")


class Dataset(_Strict):
    name: str
    description: str
    owner: str
    status: Literal["active", "planned", "disabled"]
    cadence: Cadence
    source: Source
    business_key: tuple[str, ...] = Field(min_length=1)
    version_column: str
    columns: tuple[Column, ...] = Field(min_length=1)
    transform: Transform
    contract: str
    outputs: tuple[Output, ...] = Field(min_length=1)
    # the first interval with data (history loads start here); None: the platform default, C360_START_DATE
    start_date: date | None = None
    # how a row belongs to a person (GDPR erasure, c360.erasure); none: no row is anyone's
    erasure: tuple[ErasureLink, ...] = ()
    # days the lake keeps an interval's raw, stage and quarantine partitions (landing files too, for an export
    # source) after its start (c360.retention); None: forever
    retention_days: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _erasure(self) -> Dataset:
        _check_erasure(self.columns, self.erasure, json_lists=False)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        _check_columns(self.columns, [
            ("business_key", self.business_key),
            ("version_column", (self.version_column,)),
            ("source.watermark", () if self.source.system == "ga_export" else (self.source.watermark,)),
            *((f"outputs[{i}].indexes", cols) for i, o in enumerate(self.outputs) for cols in o.indexes),
        ])
        if self.status == "active":
            for field, path in (
                ("contract", settings.PROJECT_DIR / self.contract),
                ("transform.spark_job", settings.SPARK_DIR / self.transform.spark_job),
            ):
                if not path.is_file():
                    raise ValueError(f"{field}: file {path} does not exist")
        return self

    @property
    def first_date(self) -> date:
        return self.start_date or settings.default_start_date()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def output(self) -> Output:
        return self.outputs[0]

    # the published table, as c360.warehouse creates it (the same names as a DerivedOutput's)
    @property
    def table(self) -> str:
        return self.output.table

    @property
    def key(self) -> tuple[str, ...]:
        return self.business_key

    @property
    def indexes(self) -> tuple[tuple[str, ...], ...]:
        return self.output.indexes

    @property
    def contract_path(self) -> Path:
        return settings.PROJECT_DIR / self.contract

    @property
    def dag_id(self) -> str:
        return f"{self.name}_{cadence_label(self.cadence.schedule)}"

    @property
    def full_refresh_dag_id(self) -> str | None:
        schedule = self.cadence.full_refresh_schedule
        return f"{self.name}_{cadence_label(schedule)}_full_refresh" if schedule else None


class DerivedOutput(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the Spark job's output folder
    table: str = Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
    contract: str
    history: bool  # one partition per as_of_date, or the current state only
    description: str = ""
    # one row per key: the primary key, or, when a key column may be NULL, a unique constraint under which
    # NULLs compare equal (an order without line items is one row)
    key: tuple[str, ...] = Field(min_length=1)
    columns: tuple[Column, ...] = Field(min_length=1)
    indexes: tuple[tuple[str, ...], ...] = ()
    erasure: tuple[ErasureLink, ...] = ()  # as for datasets
    # a history output: days an as-of partition is kept after its date (c360.retention); None: forever
    retention_days: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DerivedOutput:
        _check_columns(self.columns, [("key", self.key)] + [
            (f"indexes[{i}]", cols) for i, cols in enumerate(self.indexes)])
        if self.history and "as_of_date" not in self.key:
            raise ValueError("a history output's key must include as_of_date (one partition per as-of date)")
        if self.retention_days is not None and not self.history:
            raise ValueError("retention_days: only a history output has partitions to drop (the others hold the "
                             "current state)")
        _check_erasure(self.columns, self.erasure, json_lists=True)
        return self

    @property
    def contract_path(self) -> Path:
        return settings.PROJECT_DIR / self.contract

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


class Derived(_Strict):
    name: str
    description: str
    owner: str
    cadence: Cadence
    inputs: tuple[str, ...] = Field(min_length=1)
    # inputs a run can go without: when not active in the registry or not published yet, read as empty
    optional_inputs: tuple[str, ...] = ()
    transform: Transform
    outputs: tuple[DerivedOutput, ...] = Field(min_length=1)
    start_date: date | None = None  # as for datasets: the first as-of date; None: C360_START_DATE
    # days the lake keeps a run's analytics partition (input snapshots and outputs) after its as-of date
    retention_days: int | None = Field(None, ge=1)
    # inputs an incremental run reads as change sets since the previous run's export (c360.products): the
    # Spark job mirrors them in its state; empty: every run is a full rebuild
    incremental_inputs: tuple[str, ...] = ()

    @property
    def first_date(self) -> date:
        return self.start_date or settings.default_start_date()

    @model_validator(mode="after")
    def _files(self) -> Derived:
        for field, path in [("transform.spark_job", settings.SPARK_DIR / self.transform.spark_job)] + [
            (f"outputs.{o.name}.contract", o.contract_path) for o in self.outputs
        ]:
            if not path.is_file():
                raise ValueError(f"{field}: file {path} does not exist")
        return self

    @model_validator(mode="after")
    def _optional_inputs(self) -> Derived:
        stray = [i for i in self.optional_inputs if i not in self.inputs]
        if stray:
            raise ValueError(f"optional_inputs {stray} are not among its inputs")
        stray = [i for i in self.incremental_inputs if i not in self.inputs or i in self.optional_inputs]
        if stray:
            raise ValueError(f"incremental_inputs {stray} are not among its required inputs")
        return self

    @property
    def dag_id(self) -> str:
        return f"{self.name}_{cadence_label(self.cadence.schedule)}"


# ---- governance: who reads what (c360.governance enforces it in PostgreSQL) ------------------------------

# schemas a governed role's views may not take: the warehouse's own and PostgreSQL's
RESERVED_SCHEMAS = frozenset({"c360", "staging", "quality", "meta", "governance", "public", "information_schema"})


class Role(_Strict):
    """A PostgreSQL role: full access (reads the tables), governed (reads its schema of masking views), or a
    member of a governed role (reads that role's views, restricted further by its own row policies)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    access: Literal["full"] | None = None
    view_schema: str | None = Field(None, alias="schema", pattern=r"^[a-z][a-z0-9_]*$")
    pii: Literal["raw", "sha256", "hidden"] | None = None  # how a governed role sees PII by default
    member_of: str | None = None

    @model_validator(mode="after")
    def _kind(self) -> Role:
        kinds = [k for k, v in (("access", self.access), ("schema", self.view_schema),
                                ("member_of", self.member_of)) if v]
        if len(kinds) != 1:
            raise ValueError(f"a role has exactly one of access: full, schema (its views) or member_of; "
                             f"found {kinds or 'none'}")
        if (self.pii is None) == bool(self.view_schema):
            raise ValueError("pii (how it sees PII columns: raw, sha256 or hidden) goes with schema, and only "
                             "with it")
        if self.view_schema in RESERVED_SCHEMAS or (self.view_schema or "").startswith("pg_"):
            raise ValueError(f"schema {self.view_schema!r} is reserved")
        return self

    @property
    def governed(self) -> bool:
        return self.view_schema is not None


class RowPolicy(_Strict):
    """``role`` (and its members) sees only the rows whose ``column`` holds one of ``values``: in every published
    table with that column, and, in a table without it, the rows of the subjects (customers) it sees."""

    role: str
    column: str
    values: tuple[str, ...] = Field(min_length=1)
    description: str = ""

    @field_validator("values", mode="before")
    @classmethod
    def _text(cls, values):  # compared as PostgreSQL's text of the value: true, false, 42
        if isinstance(values, list | tuple):
            return [str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int | float) else v
                    for v in values]
        return values


class Subject(_Strict):
    """The data subject the row policies follow: its dataset, its id, and the columns of other tables that hold
    that id (a table without a policy's column is filtered to the subjects the role sees)."""

    dataset: str
    key: str
    key_columns: tuple[str, ...] = Field(min_length=1)


class Governance(_Strict):
    subject: Subject
    roles: dict[str, Role]
    row_policies: tuple[RowPolicy, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _inject_names(cls, data):
        if isinstance(data, dict) and isinstance(data.get("roles"), dict):
            data = {**data, "roles": {n: {**r, "name": n} if isinstance(r, dict) else r
                                      for n, r in data["roles"].items()}}
        return data

    @model_validator(mode="after")
    def _roles(self) -> Governance:
        for r in self.roles.values():
            if r.member_of and not (r.member_of in self.roles and self.roles[r.member_of].governed):
                raise ValueError(f"roles.{r.name}.member_of: {r.member_of!r} is no role with a schema")
        schemas = [r.view_schema for r in self.roles.values() if r.view_schema]
        if len(schemas) != len(set(schemas)):
            raise ValueError(f"roles: two roles share a schema ({schemas})")
        for i, p in enumerate(self.row_policies):
            role = self.roles.get(p.role)
            if role is None or role.access == "full":
                raise ValueError(f"row_policies.{i}.role: {p.role!r} is no governed role "
                                 f"(a full-access role reads the tables themselves)")
        return self

    def governed(self) -> list[Role]:
        """The roles with a schema of views, in declaration order."""
        return [r for r in self.roles.values() if r.governed]

    def schema_role(self, role: Role) -> Role:
        """The governed role whose views ``role`` reads (itself, or the one it is a member of)."""
        return self.roles[role.member_of] if role.member_of else role


class Registry(_Strict):
    datasets: dict[str, Dataset]
    derived: dict[str, Derived] = {}
    governance: Governance | None = None

    @model_validator(mode="before")
    @classmethod
    def _inject_names(cls, data: dict) -> dict:
        if isinstance(data, dict):
            data = dict(data)
            for section in ("datasets", "derived"):
                if isinstance(data.get(section), dict):
                    data[section] = {
                        name: {**spec, "name": name} if isinstance(spec, dict) else spec
                        for name, spec in data[section].items()
                    }
        return data

    @model_validator(mode="after")
    def _derived_inputs(self) -> Registry:
        for d in self.derived.values():
            unknown = [i for i in d.inputs if i not in self.datasets]
            if unknown:
                raise ValueError(f"derived.{d.name}.inputs: {unknown} are not datasets of this registry")
            for i in d.inputs:
                if i not in d.optional_inputs and self.datasets[i].status != "active":
                    raise ValueError(
                        f"derived.{d.name}.inputs: {i} is {self.datasets[i].status}, and a run would wait for "
                        f"it forever: list it in derived.{d.name}.optional_inputs or make it active")
        return self

    @model_validator(mode="after")
    def _governance(self) -> Registry:
        g = self.governance
        if g is None:
            return self
        subject = self.datasets.get(g.subject.dataset)
        if subject is None:
            raise ValueError(f"governance.subject.dataset: {g.subject.dataset!r} is no dataset")
        if g.subject.key not in subject.column_names:
            raise ValueError(f"governance.subject.key: {g.subject.key!r} is no column of {subject.name}")
        for i, p in enumerate(g.row_policies):
            if p.column not in subject.column_names:
                raise ValueError(f"governance.row_policies.{i}.column: {p.column!r} is no column of the subject "
                                 f"dataset {subject.name} (a policy follows the subject into other tables)")
        governed = {r.name for r in g.governed()}
        names: dict[str, str] = {}
        for where, entry in self._published_entries():
            for c in entry.columns:
                stray = sorted(set(c.mask) - governed)
                if stray:
                    raise ValueError(f"{where}.columns.{c.name}.mask: {stray} are no governed roles "
                                     f"(roles with a schema: {sorted(governed)})")
            name = entry.table.split(".", 1)[1]
            if name in names:
                raise ValueError(f"{where}: its table's name {name!r} is also {names[name]}'s: a governed schema "
                                 f"holds one view per name")
            names[name] = where
        return self

    def _published_entries(self) -> list[tuple[str, Dataset | DerivedOutput]]:
        return [*((f"datasets.{n}", d) for n, d in self.datasets.items() if d.status == "active"),
                *((f"derived.{d.name}.outputs.{o.name}", o) for d in self.derived.values() for o in d.outputs)]

    @model_validator(mode="after")
    def _erasure_links(self) -> Registry:
        """A ``via`` names a dataset of this registry with its own link and a one-column business key; a
        dataset's ``via`` target comes from the same source connection (the extract filters erased persons'
        rows by joining it there); no circle."""
        entries = [(f"datasets.{d.name}", d, d) for d in self.datasets.values()]
        entries += [(f"derived.{d.name}.outputs.{o.name}", o, None) for d in self.derived.values() for o in d.outputs]
        for where, entry, dataset in entries:
            for link in entry.erasure:
                if link.via is None:
                    continue
                target = self.datasets.get(link.via)
                if target is None:
                    raise ValueError(f"{where}.erasure: via {link.via!r} is no dataset of this registry")
                if not target.erasure:
                    raise ValueError(f"{where}.erasure: via {link.via!r}, which declares no erasure link of its own")
                if len(target.business_key) != 1:
                    raise ValueError(f"{where}.erasure: via {link.via!r} needs a one-column business key")
                if dataset is not None and (target.source.system, target.source.conn_id) != (
                        dataset.source.system, dataset.source.conn_id):
                    raise ValueError(f"{where}.erasure: via {link.via!r} comes from another source connection; the "
                                     f"extract filters erased persons' rows by joining it in the source")
        for name in self.datasets:
            seen, todo = set(), [name]
            while todo:
                for link in self.datasets[todo.pop()].erasure:
                    if link.via == name:
                        raise ValueError(f"datasets.{name}.erasure: a circle of 'via' links")
                    if link.via and link.via not in seen:
                        seen.add(link.via)
                        todo.append(link.via)
        return self

    def unavailable_inputs(self, d: Derived) -> list[str]:
        """Optional inputs of ``d`` a run goes without whatever is published: not active in this registry."""
        return [i for i in d.optional_inputs if self.datasets[i].status != "active"]

    def active(self) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.status == "active"]

    def dag_ids(self) -> list[str]:
        """Every DAG the registry builds: active datasets (and their full-refresh DAGs), derived products."""
        ids = [d.dag_id for d in self.active()]
        ids += [d.full_refresh_dag_id for d in self.active() if d.full_refresh_dag_id]
        return sorted(ids + [d.dag_id for d in self.derived.values()])

    def published(self) -> list[Dataset | DerivedOutput]:
        """Every published table's entry (active datasets, derived outputs): columns, key, table, contract."""
        return [*self.active(), *(o for d in self.derived.values() for o in d.outputs)]

    def contract_columns(self, contract: Path) -> tuple[Column, ...]:
        """The columns of the table a contract file checks (its schema comes from here, not the file)."""
        for entry in (*self.datasets.values(), *(o for d in self.derived.values() for o in d.outputs)):
            if entry.contract_path.resolve() == Path(contract).resolve():
                return entry.columns
        raise KeyError(f"{contract} is the contract of no dataset or derived output in {REGISTRY_FILE}")

    def __getitem__(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise KeyError(f"no dataset {name!r} in {REGISTRY_FILE}; known: {sorted(self.datasets)}") from None


class RegistryError(ValueError):
    pass


def cadence_label(cron: str) -> str:
    """A word for the DAG id: daily, hourly, weekly, monthly, or every_<n>_minutes."""
    minute, hour, dom, month, dow = cron.split()
    if minute.startswith("*/") and hour == "*":
        return f"every_{minute[2:]}_minutes"
    if hour == "*" and dom == month == dow == "*":
        return "hourly"
    if dom == month == dow == "*":
        return "daily"
    if dom == month == "*" and dow != "*":
        return "weekly"
    if dom != "*" and month == "*" and dow == "*":
        return "monthly"
    return "scheduled"


def parse_registry(text: str, source: str = "<string>") -> Registry:
    try:
        data = yaml.safe_load(text)
        return Registry.model_validate(data)
    except ValidationError as exc:
        lines = [f"invalid dataset registry {source}:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            # a check across sections has no location of its own: its message starts with the path
            lines.append(f"  {where}: {err['msg']}" if where else f"  {err['msg'].removeprefix('Value error, ')}")
        raise RegistryError("\n".join(lines)) from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"invalid dataset registry {source}: {exc}") from None


@functools.cache
def load_registry(path: Path = REGISTRY_FILE) -> Registry:
    return parse_registry(path.read_text(), source=str(path))
