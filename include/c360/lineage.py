"""OpenLineage for the c360 tasks: what each task read and wrote, with the facets the issue asks for.

The provider emits START/COMPLETE/FAIL for every task; a ``@task`` has no way to say what it read, so each task
calls :func:`attach` with its datasets and :class:`TaskLineageExtractor` (``[openlineage] extractors``) hands
them to the provider when the task ends. The Spark operator reports its lake paths itself
(:meth:`c360.spark_runner.SparkJobOperator.get_openlineage_facets_on_complete`).

Dataset names follow the OpenLineage naming spec: ``postgres://host:port`` + ``database.schema.table``;
``file`` + absolute path for the local lake; ``s3://bucket`` + key for S3.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import attr
from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from openlineage.client.generated.base import InputDatasetFacet

from c360 import settings

if TYPE_CHECKING:
    import psycopg

    from c360.quality import CheckResult
    from c360.registry import Column
    from c360.warehouse import Table

ATTRIBUTE = "c360_lineage"  # where attach() leaves the lineage on the running operator


def postgres_namespace(conn_id: str) -> tuple[str, str]:
    """(``postgres://host:port``, database) of a connection; a unix socket is this host."""
    from c360 import pg

    p = pg.conn_params(conn_id)
    host = p.get("host") or "localhost"
    host = "localhost" if host.startswith("/") else host
    return f"postgres://{host}:{p.get('port') or 5432}", p["dbname"]


def table_name(conn_id: str, table: str) -> tuple[str, str]:
    namespace, database = postgres_namespace(conn_id)
    schema, _, name = table.rpartition(".")
    return namespace, f"{database}.{schema or 'public'}.{name}"


def lake_name(uri: str) -> tuple[str, str]:
    """The dataset of a lake location: its interval partition is a version of it, not another dataset."""
    parsed = urlparse(re.sub(r"/interval=[^/]+", "", uri.rstrip("/")))
    if parsed.scheme in ("s3", "s3a"):
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme in ("file", ""):
        return "file", unquote(parsed.path)
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path


def schema_facet(columns: list[tuple[str, str]], registry_columns: tuple[Column, ...] | list[Column] = ()):
    """The schema facet of ``(name, type)`` columns; a column of ``registry_columns`` that is PII (or a document
    holding copies of PII columns) says so in its description (README "Governance")."""
    from openlineage.client.facet_v2 import schema_dataset

    described = {c.name: d for c in registry_columns if (d := column_description(c, registry_columns))}
    return schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=n, type=t, description=described.get(n)) for n, t in columns])


PII_TAG_SOURCE = "c360 registry"


def _embedded_pii(c: Column, columns) -> list[str]:
    pii = {x.name for x in columns if x.pii}
    return sorted({name for name in c.embeds.values() if name in pii})


def column_description(c: Column, columns) -> str | None:
    """``PII`` for a PII column, ``holds copies of PII: …`` for a document embedding some, and its registry
    description."""
    embedded = _embedded_pii(c, columns)
    note = "PII" if c.pii else f"holds copies of PII: {', '.join(embedded)}" if embedded else None
    return "; ".join(filter(None, (note, c.description))) or None


def pii_facets(columns: tuple[Column, ...] | list[Column]) -> dict:
    """The ``tags`` facet (spec TagsDatasetFacet) of a dataset holding registry columns: one tag ``pii`` per PII
    column (value ``true``) and per document holding copies of PII (value ``embedded``), naming the column; {}
    when it holds none. A lineage UI shows from it where PII flows."""
    from openlineage.client.facet_v2 import tags_dataset

    tags = [tags_dataset.TagsDatasetFacetFields(key="pii", value="true" if c.pii else "embedded",
                                                source=PII_TAG_SOURCE, field=c.name)
            for c in columns if c.pii or _embedded_pii(c, columns)]
    return {"tags": tags_dataset.TagsDatasetFacet(tags=tags, producer=PRODUCER)} if tags else {}


def table_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    schema, _, name = table.rpartition(".")
    return conn.execute(
        "select column_name, data_type from information_schema.columns where table_schema = %s and "
        "table_name = %s order by ordinal_position", (schema or "public", name)).fetchall()


def dataset(kind: str, namespace_name: tuple[str, str], *, facets: dict | None = None,
            rows: int | None = None, input_facets: dict | None = None):
    """An input (``kind="in"``) or output (``"out"``) dataset; ``rows`` adds outputStatistics to an output."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    namespace, name = namespace_name
    if kind == "in":
        return InputDataset(namespace=namespace, name=name, facets=facets or {}, inputFacets=input_facets or {})
    out_facets = {}
    if rows is not None:
        out_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=int(rows))
    return OutputDataset(namespace=namespace, name=name, facets=facets or {}, outputFacets=out_facets)


def warehouse_table(kind: str, table: str, **kw):
    return dataset(kind, table_name(settings.WAREHOUSE_CONN_ID, table), **kw)


def lake_path(kind: str, uri: str, **kw):
    return dataset(kind, lake_name(uri), **kw)


def published_tables(tables: list[tuple[Table, int | None]]) -> list:
    """Output datasets of published warehouse tables (registry entry, rows written) with their schema as published
    and their PII tagged."""
    from c360 import pg

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return [warehouse_table("out", e.table, rows=rows, facets={
            "schema": schema_facet(table_columns(conn, e.table), e.columns), **pii_facets(e.columns)})
            for e, rows in tables]


def checked_table(published: str, batch: str, results: list[CheckResult], rows: int | None):
    """What a quality gate read: the published table the batch is about to become (a stable dataset, so a
    lineage UI shows each table's quality history on the table itself), in the version this run checked (the
    batch table), with the gate's assertions, the metrics Soda measured and the score in its input facets."""
    from openlineage.client.facet_v2 import dataset_version_dataset

    version = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=batch)
    return warehouse_table("in", published, facets={"version": version},
                           input_facets=quality_facets(results, rows))


# The c360 custom facet: its JSON schema is include/c360/lineage_facets/<name>.json (tests validate every event
# against it). The project has no public address: ``.invalid`` (RFC 2606) says so, and a deployment that
# publishes the schema sets its own address here.
PRODUCER = "https://c360.invalid/c360"
SCHEMA_BASE = "https://c360.invalid/c360/spec/facets/1-0-0/"
FACET_SCHEMAS = settings.PROJECT_DIR / "include" / "c360" / "lineage_facets"
SCORE_FACET = "c360_qualityScore"  # custom facets are named <prefix>_<name> (OpenLineage naming convention)


@attr.define
class QualityScoreInputDatasetFacet(InputDatasetFacet):
    """The dataset's quality score for this run (:func:`c360.quality.score`) and the outcomes it is made of."""

    checksPassed: int  # noqa: N815
    checksWarned: int  # noqa: N815
    checksFailed: int  # noqa: N815
    checksNotEvaluated: int  # noqa: N815
    score: float | None = attr.field(default=None)  # none when no check was evaluated

    @staticmethod
    def _get_schema() -> str:
        return f"{SCHEMA_BASE}QualityScoreInputDatasetFacet.json#/$defs/QualityScoreInputDatasetFacet"


def score_facet(results: list[CheckResult]):
    from c360 import quality

    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "warned", "failed", "not_evaluated")}
    return QualityScoreInputDatasetFacet(
        score=quality.score(results), checksPassed=counts["passed"], checksWarned=counts["warned"],
        checksFailed=counts["failed"], checksNotEvaluated=counts["not_evaluated"], producer=PRODUCER)


def quality_facets(results: list[CheckResult], row_count: int | None) -> dict:
    """Input facets of an audited table: one assertion per check (``assertion`` its classification, ``name``
    the check's name, its column, outcome and severity: a warned check is a failed assertion of warning
    severity; ``actual`` the measured value, its unit in ``params``), the metrics Soda measured, and the
    score."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    assertions = [
        dqa.Assertion(assertion=r.kind or "custom", name=r.check_name, success=r.outcome == "passed",
                      column=r.column_name, severity="error" if r.severity == "blocking" else "warn",
                      actual=None if r.measured_value is None else repr(float(r.measured_value)),
                      expected=r.threshold, params={"unit": r.unit} if r.unit else {})
        for r in results if r.outcome != "not_evaluated"
    ]
    nulls = {r.column_name: int(r.diagnostics["missing_count"]) for r in results
             if r.column_name and "missing_count" in r.diagnostics}
    metrics = dqm.DataQualityMetricsInputDatasetFacet(
        rowCount=row_count, columnMetrics={c: dqm.ColumnMetrics(nullCount=n) for c, n in nulls.items()})
    return {"dataQualityAssertions": dqa.DataQualityAssertionsDatasetFacet(assertions=assertions),
            "dataQualityMetrics": metrics, SCORE_FACET: score_facet(results)}


def attach(context: dict[str, Any] | None, inputs: list | None = None, outputs: list | None = None) -> None:
    """Leave this task's datasets on its operator, for the extractor; adds to what the task recorded before."""
    if not context or "task" not in context:
        return  # called outside a task (tests of the step functions)
    task = context["task"]
    before = getattr(task, ATTRIBUTE, None) or OperatorLineage()

    def merged(old: list, new: list | None) -> list:  # a sensor poking again records the same datasets
        seen = {(d.namespace, d.name) for d in old}
        return [*old, *(d for d in new or [] if (d.namespace, d.name) not in seen)]

    setattr(task, ATTRIBUTE, OperatorLineage(inputs=merged(before.inputs, inputs),
                                             outputs=merged(before.outputs, outputs)))


class TaskLineageExtractor(BaseExtractor):
    """The datasets a ``@task`` recorded with :func:`attach` (nothing at START: they are known at the end)."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator", "DecoratedSensorOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:
        return OperatorLineage()

    def extract_on_complete(self, task_instance) -> OperatorLineage | None:
        return getattr(self.operator, ATTRIBUTE, None) or OperatorLineage()
