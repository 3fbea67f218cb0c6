-- Batch tables of the staging schema, with their columns.
select t.table_name, array_agg(c.column_name::text order by c.ordinal_position)
from information_schema.tables t
join information_schema.columns c using (table_schema, table_name)
where t.table_schema = 'staging' and t.table_type = 'BASE TABLE'
group by t.table_name
order by t.table_name
