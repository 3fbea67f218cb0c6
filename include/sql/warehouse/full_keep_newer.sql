-- Full refresh as of the interval end, before the swap: the batch takes over the published rows that are newer
-- than the refresh (changed at or after its end, or a newer version than the batch's row of the same key), so
-- a full refresh of an older interval reconciles deletions without undoing a later change.
with newer as (
    select p.* from {published} p
    left join {batch} b on {key_match_pb}
    where (b.{first_key} is null and (p.{watermark} >= %(end)s or p.{version} >= %(end)s))
       or p.{version} > b.{version}
), replaced as (
    delete from {batch} b using newer p where {key_match_pb} returning 1
), added as (
    insert into {batch} select * from newer returning 1
)
select (select count(*) from added) as kept, (select count(*) from added) - (select count(*) from replaced) as net
