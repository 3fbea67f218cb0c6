-- Requests not finished yet, oldest first.
select id from governance.erasure_requests where status <> 'done' order by id
