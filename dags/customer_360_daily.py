"""
### Customer 360 outputs — daily (Airflow DAG built from the registry's `derived` entry by `c360.dag_factory`)

As of each run's interval end (midnight UTC), once every input dataset has published its intervals up to
then (`wait_for_inputs`, a rescheduling sensor; web analytics is an optional input: when disabled in the
registry or never published it is not waited for and is read as empty): snapshots of the published inputs go
to the lake, one Spark job (`include/spark/customer360_job.py`) builds enriched orders, RFM scores and segments, audience
membership (rules in `include/c360/segments.yaml`) and the unified customer profile (seed 003), each output
passes its Soda contract, and all are published in one transaction. RFM and segment membership keep one
partition per as-of date (a backfill replaces its date); enriched orders and profiles hold the current state.

A day's run is incremental when it can be: it exports only the order, line and payment rows changed since
the previous run's export and advances that run's state (enriched orders are published as a delta of the
changed orders); `export_inputs` logs "incremental build" or "full build" and why. Trigger with
`full_refresh=true` to rebuild every output from the published inputs; the first run, a backfill of a past
date, a changed `segments.yaml`, or a full refresh, erasure or purge of an input since rebuild by themselves.

Tasks: `wait_for_inputs` → `export_inputs` → `build_with_spark` → `load_to_staging` → `check_quality` →
`publish_outputs`. Current views and the seed 002 lens views: `include/sql/outputs/views.sql`, and over web
analytics `web_views.sql`.
"""

from c360.dag_factory import build_derived_dag
from c360.registry import load_registry

dag = build_derived_dag(load_registry().derived["customer_360"], doc_md=__doc__)
