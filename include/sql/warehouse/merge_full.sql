-- Full refresh: the batch is the whole table; rows deleted at the source disappear.
insert into {next} select * from {batch};
