"""
### Web analytics — hourly (Airflow DAG built from the dataset registry by `c360.dag_factory`)

Google Analytics export files (nested JSON, one session per line) land hourly in
`lake/landing/web_analytics/dt=YYYY-MM-DD/hr=HH/`. Each run copies its hour into raw, and a Spark job
(`include/spark/web_analytics_job.py`) flattens the sessions into the seed 002 lens activities — product
views, items added to favourite, items added to cart, orders placed — resolving the customer through the
visitor map. A malformed or mistyped line is quarantined whole with a reason; raw lines = parsed +
quarantined is checked before loading. A missing hour fails the run (the export is late) and is retried.
"""

from c360.dag_factory import build_dag
from c360.registry import load_registry

dag = build_dag(load_registry()["web_analytics"], doc_md=__doc__)
