-- One request, locked for the caller's transaction.
select customer_id, subject_hash, status, identifiers from governance.erasure_requests where id = %(id)s for update
