-- Incremental publish, step 2 of 2: insert the batch rows whose key is not (or no longer) published.
insert into {published}
select b.* from {batch} b
where not exists (select 1 from {published} p where {key_match_pb})
