"""
### Order line items — every 15 minutes (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Order line items from the OLTP PostgreSQL (seed 002 "Order Line Item", real time), by `created_at`.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["order_line_item"], doc_md=__doc__)
