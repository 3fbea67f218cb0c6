-- Delta publish of a current output, step 1 of 2 (same transaction): the rows of the replaced keys leave;
-- step 2 inserts the batch (the replaced keys' rows as of this run).
delete from {published} p
using {replaced} r
where p.{key} = r.{key}
