"""
### Brand — monthly full refresh (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Reloads the whole brand table as of the interval end and drops rows deleted at the source (seed 002: brands refreshed monthly).
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["brand"], doc_md=__doc__, full_refresh=True)
