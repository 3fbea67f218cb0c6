-- Next version of the published table = published rows, replaced by newer versions from the batch.
-- "Newer" is by the version column, so replaying an old interval never overwrites a later change.
insert into {next}
select p.* from {published} p
where not exists (
    select 1 from {batch} b where {key_match_pb} and b.{version} > p.{version}
);
insert into {next}
select b.* from {batch} b
where not exists (
    select 1 from {published} p where {key_match_pb} and p.{version} >= b.{version}
);
