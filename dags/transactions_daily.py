"""
### Transactions — daily (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Payment transactions from the OLTP PostgreSQL (seed 002 "Transactions", daily), by `transaction_ts`; refunds are negative amounts.

Tasks: `extract_to_raw` → `stage_with_spark` (types, latest version per business key, quarantine with a
reason) → `load_to_staging` → `check_quality` (Soda contract `quality/transactions.yml`, score recorded) →
`publish_table` (one-transaction swap; a blocking quality failure leaves the published table as it was).
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["transactions"], doc_md=__doc__)
