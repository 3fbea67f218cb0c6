-- The columns of one table.
select column_name::text from information_schema.columns where table_schema = %(schema)s and table_name = %(table)s
