"""
### Orders — every 15 minutes (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Orders from the OLTP PostgreSQL (seed 002 "Orders", real time): rows whose `order_date` falls in the 15-minute interval. Late-arriving orders are picked up by rerunning their interval.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["orders"], doc_md=__doc__)
