-- The business keys of the erased person's rows of one table (what rows of other tables link to via it).
select distinct {key}::text from {table} where {linked} and {key} is not null
