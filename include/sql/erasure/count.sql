-- How many rows of one table still belong to the erased person (the check after an erasure).
select count(*) from {table} where {linked}
