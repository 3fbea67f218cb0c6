-- A new erasure request for one customer id (pending until the gdpr_erasure DAG erases the person).
insert into governance.erasure_requests (customer_id, subject_hash, requested_by)
values (%(customer_id)s, %(subject_hash)s, coalesce(%(requested_by)s, session_user))
returning id
