"""
### Brand — weekly (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Brands from the Redshift source (seed 002 "Brand"); rows changed in the week, by `updated_at`. The monthly full refresh is `brand_monthly_full_refresh`.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["brand"], doc_md=__doc__)
