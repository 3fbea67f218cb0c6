-- Tables of the staging schema and when each was last analyzed (c360.warehouse.fill_batch analyzes a batch it fills).
select c.relname::text, greatest(s.last_analyze, s.last_autoanalyze)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
where n.nspname = 'staging' and c.relkind in ('r', 'p')
order by c.relname
