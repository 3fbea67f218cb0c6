"""
### Housekeeping — daily (Airflow DAG built by `c360.lifecycle_dags`)

Retention from the registry's `retention_days`, as of each run's interval end: lake partitions (raw, stage,
quarantine, GA landing hours, Customer 360 analytics partitions) and history partitions (`rfm_history`,
`segment_membership_history` by `as_of_date`) past retention are dropped, and batch tables left in `staging`
longer than `C360_STAGING_RETENTION_DAYS`; each drop is an audit trail entry. Pending GDPR erasure requests
are carried out too. README: "Erasure and retention".
"""

from c360.lifecycle_dags import build_housekeeping_dag

dag = build_housekeeping_dag(doc_md=__doc__)
