"""
### Product — weekly (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Product catalogue from the Redshift source (seed 002 "Product", updated weekly); rows changed in the week, by `updated_at`.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["product"], doc_md=__doc__)
