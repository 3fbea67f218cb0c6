-- Incremental publish, step 1 of 2 (same transaction): drop the published rows the batch replaces, i.e.
-- rows whose business key is in the batch with the same or a newer version. Published rows newer than the
-- batch stay, so replaying an old interval never undoes a later change.
delete from {published} p
using {batch} b
where {key_match_pb} and b.{version} >= p.{version}
