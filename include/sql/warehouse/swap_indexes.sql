-- The published table's indexes, to rebuild on the batch: a constraint (primary key, unique) as its
-- definition, any other index as the part of its definition after "USING" (method, keys, include, where).
select i.indisunique                                          as is_unique,
       c.relname                                              as index_name,
       con.conname                                            as constraint_name,
       pg_get_constraintdef(con.oid)                          as constraint_def,
       substr(pg_get_indexdef(i.indexrelid), strpos(pg_get_indexdef(i.indexrelid), ' USING ') + 1) as index_tail
from pg_index i
join pg_class c on c.oid = i.indexrelid
left join pg_constraint con on con.conindid = i.indexrelid and con.conrelid = i.indrelid
where i.indrelid = %(table)s::regclass
order by c.relname
