"""
### Transactions — daily (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Payment transactions from the OLTP PostgreSQL (seed 002 "Transactions", daily), by `transaction_ts`; refunds are negative amounts.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["transactions"], doc_md=__doc__)
