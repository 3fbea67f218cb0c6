-- Refused: nothing was erased; the request waits for a steward's review (file a new one once resolved).
update governance.erasure_requests set status = 'refused', identifiers = null, counts = %(counts)s
where id = %(id)s
