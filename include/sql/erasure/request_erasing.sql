-- The warehouse has been erased: keep the resolved person until the lake is too (a rerun finishes with them).
update governance.erasure_requests set status = 'erasing', identifiers = %(identifiers)s, dag_run_id = %(run_id)s
where id = %(id)s
