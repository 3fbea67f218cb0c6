-- Drop a history output's as-of partitions older than the retention cutoff.
delete from {table} where as_of_date < %(cutoff)s
