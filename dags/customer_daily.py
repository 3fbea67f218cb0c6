"""
### Customer — daily (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Customer master data from the Redshift source (seed 002 "Customer", updated daily).

`extract_to_raw` copies the rows changed in the data interval (by `updated_at`) into the lake's raw layer;
`stage_with_spark` types and deduplicates them (latest version per `customer_id`; rejected rows go to
quarantine with a reason); `load_to_staging` builds the next version of `c360.customer` in PostgreSQL;
`check_quality` runs the Soda contract `quality/customer.yml` and records the score; `publish_table`
swaps the audited version in, in one transaction. A blocking quality failure leaves the published table
as it was. Trigger with `full_refresh=true` to reload the whole table.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["customer"], doc_md=__doc__)
