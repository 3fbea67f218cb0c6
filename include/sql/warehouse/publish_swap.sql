-- Swap in the audited next version. Runs in one transaction: readers see the old rows until commit.
lock table {published} in access exclusive mode;
truncate {published};
insert into {published} select * from {next};
