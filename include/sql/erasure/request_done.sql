-- Done: the clear-text id and identifiers go; the hash and the counts stay.
update governance.erasure_requests
set status = 'done', customer_id = null, identifiers = null, completed_at = now(), counts = %(counts)s,
    dag_run_id = coalesce(%(run_id)s, dag_run_id)
where id = %(id)s
