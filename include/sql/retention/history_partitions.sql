-- As-of partitions of a history output older than the retention cutoff, with their rows.
select as_of_date, count(*) from {table} where as_of_date < %(cutoff)s group by as_of_date order by as_of_date
