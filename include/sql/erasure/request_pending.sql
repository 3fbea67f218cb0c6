-- Requests not finished yet (refused ones wait for a review), oldest first.
select id from governance.erasure_requests where status in ('pending', 'erasing') order by id
