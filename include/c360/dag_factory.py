"""Builds a dataset's DAG from its registry entry; every tabular dataset gets the same shape:

extract_to_raw → stage_with_spark → load_to_staging → check_quality → publish_table

Heavy imports (pyspark, pyarrow, soda) happen inside the tasks, so parsing stays cheap.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task

from c360 import alerts, lake, settings
from c360.registry import Dataset, Derived, cadence_label, spark_columns
from c360.spark_runner import SparkJobOperator

# Airflow's start_date of every DAG (see settings.DAG_START_FLOOR): the real first interval of each dataset
# is its registry start_date, which the first task enforces with a clear error.
START_DATE = datetime.fromisoformat(settings.DAG_START_FLOOR).replace(tzinfo=UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": alerts.notify_failure,
}

# spark-submit defaults (a Spark Connect server has its own: c360.spark_runner.server_conf); a cluster's
# own settings come with its spark_default connection.
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
    "spark.hadoop.fs.permissions.umask-mode": "077",  # lake files owner-only (the lake holds PII)
}


def warehouse_asset(table: str) -> Asset:
    """Canonical asset URI of a published table: postgres://host:port/database/schema/table."""
    from c360 import pg

    try:
        p = pg.conn_params(settings.WAREHOUSE_CONN_ID)
        host = p.get("host") or "localhost"
        host = "localhost" if host.startswith("/") else host  # a unix socket is this host
        authority, database = f"{host}:{p.get('port', 5432)}", p["dbname"]
    except settings.SettingError:
        authority, database = "localhost:5432", "c360"  # parse without the connection; tasks still need it
    schema, name = table.split(".", 1)
    return Asset(f"postgres://{authority}/{database}/{schema}/{name}")


def lake_asset(layer: str, dataset: str) -> Asset:
    return Asset(lake.uri(layer, dataset))


def stage_spec(ds: Dataset) -> str:
    """The registry's view of the dataset for the Spark job, base64 JSON (no quoting or templating issues)."""
    spec = {
        "columns": spark_columns(ds.columns),
        "business_key": list(ds.business_key),
        "version_column": ds.version_column,
    }
    return base64.b64encode(json.dumps(spec).encode()).decode()


def _interval(context: dict[str, Any]):
    from c360.warehouse import Interval

    return Interval(context["data_interval_start"], context["data_interval_end"], context["run_id"],
                    context["dag"].dag_id)


def spark_task(task_id: str, job: str, name: str, args: list[str], outlets: list[Asset]) -> SparkJobOperator:
    """A Spark job of include/spark as a task, on the ``spark_default`` connection (Connect or spark-submit),
    shipping the jobs' shared module."""
    return SparkJobOperator(task_id=task_id, conn_id=settings.SPARK_CONN_ID, application=str(settings.SPARK_DIR / job),
                            py_files=str(settings.SPARK_DIR / "jobkit.py"), name=name, conf=SPARK_CONF,
                            application_args=args, outlets=outlets)


def enforce_gate(context: dict[str, Any], owner: str, gated: list) -> None:
    """The end of every check_quality task: the checked tables go into the task's lineage (assertions, metrics,
    score), then a blocking failure fails the task without retries (bad data: retrying cannot help; errors
    that stopped the checks from running raised before this and do retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    from c360 import lineage, quality

    lineage.attach(context, [lineage.checked_table(g.table, g.batch, g.results, g.rows) for g in gated])
    try:
        quality.enforce(owner, gated, context["run_id"])
    except quality.QualityGateFailed as exc:
        raise AirflowFailException(str(exc)) from exc


def check_start_date(entry: Dataset | Derived, section: str, context: dict[str, Any]) -> None:
    """Fail the run (no retry) when its interval starts before the entry's first date: a silent no-op run
    would look like a loaded interval."""
    from airflow.sdk.exceptions import AirflowFailException

    start = context["data_interval_start"]
    first = datetime.combine(entry.first_date, datetime.min.time(), tzinfo=UTC)
    if start < first:
        raise AirflowFailException(
            f"{entry.name}: the interval starting {start:%Y-%m-%d %H:%M} UTC is before its start_date "
            f"{entry.first_date} ({section}.{entry.name}.start_date in the registry, or C360_START_DATE for all); "
            f"set it earlier to load older history")


def build_dag(ds: Dataset, *, doc_md: str | None = None, full_refresh: bool = False) -> DAG | None:
    """The dataset's DAG, or None when the registry does not make it active (the DAG file then defines none)."""
    if ds.status != "active":
        return None
    schedule = ds.cadence.full_refresh_schedule if full_refresh else ds.cadence.schedule
    if schedule is None:
        raise ValueError(f"{ds.name}: no full_refresh_schedule in the registry")
    label = f"{cadence_label(schedule)}_full_refresh" if full_refresh else cadence_label(schedule)
    publish = ("one-transaction swap of the whole table" if full_refresh else
               "one-transaction upsert by business key, a row replaced only by its same or newer version")
    tasks = (f"Tasks: `extract_to_raw` → `stage_with_spark` (`include/spark/{ds.transform.spark_job}`: types, "
             f"latest version per `{', '.join(ds.business_key)}`, quarantine with a reason) → `load_to_staging` "
             f"(the run's batch table) → `check_quality` (Soda contract `{ds.contract}`, score recorded) → "
             f"`publish_table` ({publish} into `{ds.table}`; a blocking quality failure leaves it as it was)."
             + ("" if full_refresh or ds.source.system == "ga_export" else
                " Trigger with `full_refresh=true` to reload the whole table."))
    xcom = "ti.xcom_pull(task_ids='extract_to_raw')"

    with DAG(
        dag_id=ds.full_refresh_dag_id if full_refresh else ds.dag_id,
        description=ds.description,
        schedule=CronDataIntervalTimetable(schedule, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # runs share the dataset's staging tables
        default_args={**DEFAULT_ARGS, "owner": ds.owner},
        tags=["c360", ds.name, ds.source.system, "full_refresh" if full_refresh else label],
        doc_md=f"{doc_md.rstrip()}\n\n{tasks}\n" if doc_md else tasks,
        params={
            "full_refresh": Param(
                full_refresh, type="boolean",
                description="Reload the whole source table as of the interval end and drop rows deleted there.",
            )
        },
        render_template_as_native_obj=False,
    ) as dag:

        @task(multiple_outputs=True, task_id="extract_to_raw", outlets=[lake_asset("raw", ds.name)])
        def extract_to_raw(**context: Any) -> dict[str, Any]:
            from c360 import lineage, steps

            check_start_date(ds, "datasets", context)
            wants_full = bool(context["params"].get("full_refresh"))
            if ds.source.system == "ga_export":
                # events are facts of their hour: there is no "whole table as of now" to reload
                out = steps.extract_landing(ds, _interval(context))
                sources = [lineage.lake_path("in", f"{settings.landing_uri()}/{ds.source.path}")]
                if ds.source.lookup:
                    sources.append(lineage.lake_path("in", out["lookup"]))
            else:
                # The first run of a dataset bootstraps it with a full load.
                mode = steps.FULL if wants_full or not steps.published_exists(ds) else steps.INCREMENTAL
                out = steps.extract(ds, _interval(context), mode)
                sources = [lineage.dataset("in", lineage.table_name(ds.source.conn_id, ds.source.table))]
            lineage.attach(context, sources, [lineage.lake_path("out", out["raw"], rows=out["raw_rows"],
                                                                facets=lineage.pii_facets(ds.columns))])
            layers = [k for k in ("raw", "stage", "quarantine", "lookup") if k in out]
            return {**out, **{f"spark_{k}": lake.spark_uri(out[k]) for k in layers}}

        stage_with_spark = spark_task(
            "stage_with_spark", ds.transform.spark_job, f"c360_stage_{ds.name}",
            [
                "--dataset", ds.name,
                "--spec", stage_spec(ds),
                "--raw", f"{{{{ {xcom}['spark_raw'] }}}}",
                "--stage", f"{{{{ {xcom}['spark_stage'] }}}}",
                "--quarantine", f"{{{{ {xcom}['spark_quarantine'] }}}}",
                *(["--lookup", f"{{{{ {xcom}['spark_lookup'] }}}}"] if ds.source.lookup else []),
            ],
            [lake_asset("stage", ds.name), lake_asset("quarantine", ds.name)],
        )

        @task(multiple_outputs=True, task_id="load_to_staging")
        def load_to_staging(extracted: dict[str, Any], **context: Any) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from c360 import lineage, steps, warehouse

            try:
                loaded = steps.load_staging(ds, _interval(context), extracted, context["dag"].dag_id)
            except warehouse.UnstorableText as exc:
                raise AirflowFailException(str(exc)) from exc  # the value will not change on a retry
            lineage.attach(context, [lineage.lake_path("in", extracted["stage"])],
                           [lineage.warehouse_table("out", loaded["batch_table"], rows=loaded["staged_rows"],
                                                    facets=lineage.pii_facets(ds.columns))])
            return loaded

        @task(multiple_outputs=True, task_id="check_quality")
        def check_quality(loaded: dict[str, Any], **context: Any) -> dict[str, Any]:
            from c360 import quality, steps

            interval = _interval(context)
            # cleared after the publish, the run's batch is gone: rebuilt from the stage partition it came from
            steps.ensure_batch(ds, interval, loaded)
            gated = quality.gate(ds.name, ds.table, ds.contract_path, loaded["batch_table"], interval,
                                 rows=loaded["staged_rows"], extra=quality.platform_checks(ds, loaded),
                                 columns=ds.columns)
            enforce_gate(context, ds.name, [gated])
            return quality.summary(gated)

        @task(multiple_outputs=True, task_id="publish_table", outlets=[warehouse_asset(ds.table)])
        def publish_table(loaded: dict[str, Any], **context: Any) -> dict[str, Any]:
            from c360 import lineage, steps

            published = steps.publish(ds, _interval(context), loaded)
            schema = lineage.schema_facet([(c.name, c.type) for c in ds.columns], ds.columns)
            lineage.attach(context, [lineage.warehouse_table("in", loaded["batch_table"])],
                           [lineage.warehouse_table("out", ds.table, facets={"schema": schema,
                                                                             **lineage.pii_facets(ds.columns)},
                                                    rows=published["rows_written"])])
            return published

        extracted = extract_to_raw()
        loaded = load_to_staging(extracted)
        gate = check_quality(loaded)
        extracted >> stage_with_spark >> loaded >> gate >> publish_table(loaded)
    return dag


def build_derived_dag(d: Derived, *, doc_md: str | None = None) -> DAG:
    """A derived data product: wait_for_inputs → export_inputs → build_with_spark → load_to_staging →
    check_quality → publish_outputs, as of the run's interval end."""
    from c360.segments import load_segments

    xcom = "ti.xcom_pull(task_ids='export_inputs')"
    spec = base64.b64encode(json.dumps(load_segments().spec()).encode()).decode()
    with DAG(
        dag_id=d.dag_id,
        description=d.description.strip(),
        schedule=CronDataIntervalTimetable(d.cadence.schedule, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "owner": d.owner},
        tags=["c360", d.name, "derived", cadence_label(d.cadence.schedule)],
        doc_md=doc_md,
        params={
            "full_refresh": Param(
                False, type="boolean",
                description="Rebuild every output from the published inputs instead of advancing the last "
                            "run's state by the rows changed since.",
            )
        },
    ) as dag:

        @task.sensor(task_id="wait_for_inputs", poke_interval=300, timeout=6 * 3600, mode="reschedule")
        def wait_for_inputs(**context: Any):
            from airflow.sdk import PokeReturnValue

            from c360 import lineage, products

            check_start_date(d, "derived", context)
            lineage.attach(context, [lineage.warehouse_table("in", t) for t in products.input_tables(d)])
            missing = products.missing_inputs(d, context["data_interval_end"])
            if missing:
                print(f"waiting for inputs to publish: {', '.join(missing)}")
            return PokeReturnValue(is_done=not missing)

        @task(multiple_outputs=True, task_id="export_inputs")
        def export_inputs(**context: Any) -> dict[str, Any]:
            from c360 import lineage, products
            from c360.registry import load_registry

            as_of = context["data_interval_end"]
            exported = products.export_inputs(d, as_of, full_refresh=bool(context["params"].get("full_refresh")))
            uris = exported["inputs"]
            print(f"{exported['mode']} build: {exported['reason']}")
            registry = load_registry()
            lineage.attach(context, [lineage.warehouse_table("in", t) for t in products.input_tables(d)],
                           [lineage.lake_path("out", u, facets=lineage.pii_facets(registry[n].columns))
                            for n, u in uris.items() if n != "visitor_map"])
            return {**{k: v for k, v in exported.items() if k != "inputs"},
                    "inputs": base64.b64encode(json.dumps(uris).encode()).decode(),
                    "spark_state_in": lake.spark_uri(exported["state_in"]) if exported["state_in"] else "",
                    "spark_state_out": lake.spark_uri(exported["state_out"]) if exported["state_out"] else "",
                    "out": lake.spark_uri(products.partition(d, as_of, "outputs", "")).rstrip("/"),
                    "as_of": as_of.isoformat()}

        build_with_spark = spark_task(
            "build_with_spark", d.transform.spark_job, f"c360_{d.name}",
            [
                "--inputs", f"{{{{ {xcom}['inputs'] }}}}",
                "--as-of", f"{{{{ {xcom}['as_of'] }}}}",
                "--spec", spec,
                "--out", f"{{{{ {xcom}['out'] }}}}",
                "--state-in", f"{{{{ {xcom}['spark_state_in'] }}}}",
                "--state-out", f"{{{{ {xcom}['spark_state_out'] }}}}",
            ],
            [lake_asset("analytics", d.name)],
        )

        @task(multiple_outputs=True, task_id="load_to_staging")
        def load_to_staging(**context: Any) -> dict[str, Any]:
            from c360 import lineage, products

            as_of = context["data_interval_end"]
            mode = context["ti"].xcom_pull(task_ids="export_inputs", key="mode")
            loaded = products.load_outputs(d, as_of, mode)
            lineage.attach(
                context, [lineage.lake_path("in", products.partition(d, as_of, "outputs", o.name)) for o in d.outputs],
                [lineage.warehouse_table("out", loaded[o.name]["batch_table"], rows=loaded[o.name]["rows"],
                                         facets=lineage.pii_facets(o.columns)) for o in d.outputs])
            return loaded

        @task(multiple_outputs=True, task_id="check_quality")
        def check_quality(loaded: dict[str, Any], **context: Any) -> dict[str, Any]:
            from c360 import quality

            interval = _interval(context)
            gated = [quality.gate(o.name, o.table, o.contract_path, loaded[o.name]["batch_table"], interval,
                                  rows=loaded[o.name]["rows"], columns=o.columns) for o in d.outputs]
            enforce_gate(context, d.name, gated)
            return {g.name: g.score for g in gated}

        @task(multiple_outputs=True, task_id="publish_outputs",
              outlets=[warehouse_asset(o.table) for o in d.outputs])
        def publish_outputs(loaded: dict[str, Any], **context: Any) -> dict[str, Any]:
            from c360 import lineage, products

            exported = context["ti"].xcom_pull(task_ids="export_inputs")
            published = products.publish_outputs(d, _interval(context), context["data_interval_end"], loaded,
                                                 exported)
            lineage.attach(context, [lineage.warehouse_table("in", loaded[o.name]["batch_table"]) for o in d.outputs],
                           lineage.published_tables([(o, published.get(o.name)) for o in d.outputs]))
            return published

        exported = export_inputs()
        loaded = load_to_staging()
        wait_for_inputs() >> exported >> build_with_spark >> loaded
        check_quality(loaded) >> publish_outputs(loaded)
    return dag
