-- One audit trail entry (governance.audit_log, append-only).
insert into governance.audit_log (action, actor, dag_id, dag_run_id, subject, rows, detail)
values (%(action)s, %(actor)s, %(dag_id)s, %(run_id)s, %(subject)s, %(rows)s, %(detail)s)
