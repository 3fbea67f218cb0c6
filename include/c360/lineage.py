"""OpenLineage for the c360 tasks: what each task read and wrote, with the facets the issue asks for.

The provider emits START/COMPLETE/FAIL for every task; a ``@task`` has no way to say what it read, so each task
calls :func:`record` with its datasets and :class:`TaskLineageExtractor` (``[openlineage] extractors``) hands
them to the provider when the task ends. The Spark operator reports its lake paths itself
(:meth:`c360.spark_runner.SparkJobOperator.get_openlineage_facets_on_complete`).

Dataset names follow the OpenLineage naming spec: ``postgres://host:port`` + ``database.schema.table``;
``file`` + absolute path for the local lake; ``s3://bucket`` + key for S3.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage

from c360 import settings

if TYPE_CHECKING:
    import psycopg

    from c360.quality import CheckResult

ATTRIBUTE = "c360_lineage"  # where record() leaves the lineage on the running operator


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


def schema_facet(columns: list[tuple[str, str]]):
    from openlineage.client.facet_v2 import schema_dataset

    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns])


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


def published_tables(tables: list[tuple[str, int | None]]) -> list:
    """Output datasets of published warehouse tables (name, rows written) with their schema as published."""
    from c360 import pg

    with pg.connect(settings.WAREHOUSE_CONN_ID) as conn:
        return [warehouse_table("out", t, rows=rows, facets={"schema": schema_facet(table_columns(conn, t))})
                for t, rows in tables]


def checked_table(table: str, results: list[CheckResult], rows: int | None):
    """The audited batch as an input of the gate, with its assertions and measured metrics."""
    facets, input_facets = quality_facets(results, rows)
    return warehouse_table("in", table, facets=facets, input_facets=input_facets)


def quality_facets(results: list[CheckResult], row_count: int | None) -> tuple[dict, dict]:
    """(dataset facets, input facets) of an audited table: one assertion per check with its outcome and column
    (a warned check is a failed assertion of warning severity), and the metrics Soda measured."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    assertions = [
        dqa.Assertion(assertion=r.check_name, success=r.outcome == "passed", column=r.column_name,
                      severity="error" if r.severity == "blocking" else "warn",
                      actual=None if r.measured_value is None else str(r.measured_value), expected=r.threshold)
        for r in results if r.outcome != "not_evaluated"
    ]
    nulls = {r.column_name: int(r.diagnostics["missing_count"]) for r in results
             if r.column_name and "missing_count" in r.diagnostics}
    metrics = dqm.DataQualityMetricsInputDatasetFacet(
        rowCount=row_count, columnMetrics={c: dqm.ColumnMetrics(nullCount=n) for c, n in nulls.items()})
    return {"dataQualityAssertions": dqa.DataQualityAssertionsDatasetFacet(assertions=assertions)}, \
        {"dataQualityMetrics": metrics}


def record(context: dict[str, Any] | None, inputs: list | None = None, outputs: list | None = None) -> None:
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
    """The datasets a ``@task`` recorded with :func:`record` (nothing at START: they are known at the end)."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator", "DecoratedSensorOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:
        return OperatorLineage()

    def extract_on_complete(self, task_instance) -> OperatorLineage | None:
        return getattr(self.operator, ATTRIBUTE, None) or OperatorLineage()
