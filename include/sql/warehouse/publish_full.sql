-- Full refresh: the audited batch replaces the table; rows deleted at the source disappear.
-- One transaction: readers see the old rows until commit.
lock table {published} in access exclusive mode;
truncate {published};
insert into {published} select * from {batch};
