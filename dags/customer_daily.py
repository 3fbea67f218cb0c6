"""
### Customer — daily (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Customer master data from the Redshift source (seed 002 "Customer", updated daily).

Rows changed in the data interval, by `updated_at`.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["customer"], doc_md=__doc__)
