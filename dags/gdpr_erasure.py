"""
### GDPR erasure — on request (Airflow DAG built by `c360.lifecycle_dags`)

The right to be forgotten. Trigger with `{"customer_id": "C00000042"}`, or file requests with
`python -m c360.erasure request C00000042` and trigger without conf (the daily housekeeping also carries out
pending requests). The person is every customer id identity resolution joined to the one named (the profile's
`customer_ids`, shared emails, phones and web visitor ids): their rows leave every published table (history
outputs in all as-of partitions), every staging batch and every lake file (raw, stage, quarantine, analytics
snapshots and outputs, GA landing files and visitor map, rewritten file by file), their ids are suppressed so no
extract, rerun or backfill brings them back, and the audit trail records the counts under a salted hash of the
id. README: "Erasure and retention".
"""

from c360.lifecycle_dags import build_erasure_dag

dag = build_erasure_dag(doc_md=__doc__)
