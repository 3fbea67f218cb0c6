-- The objects of the governed schemas: a view by name, a function by name(identity arguments); its comment (the
-- fingerprint of its definition), owner, whether the schema's role can read (execute) it, and ok: a view is a
-- security barrier. names: only these (NULL: every object).
select n.nspname as schema, c.relname as name, 'view' as kind, obj_description(c.oid, 'pg_class') as comment,
       pg_get_userbyid(c.relowner) as owner, has_table_privilege(s.role, c.oid, 'SELECT') as readable,
       coalesce('security_barrier=true' = any(c.reloptions), false) as ok
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join unnest(%(schemas)s::text[], %(roles)s::text[]) as s(nspname, role) on s.nspname = n.nspname
where c.relkind = 'v' and (%(names)s::text[] is null or c.relname = any(%(names)s))
union all
select n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', 'function',
       obj_description(p.oid, 'pg_proc'), pg_get_userbyid(p.proowner), has_function_privilege(s.role, p.oid, 'EXECUTE'),
       true
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join unnest(%(schemas)s::text[], %(roles)s::text[]) as s(nspname, role) on s.nspname = n.nspname
where p.prokind = 'f' and (%(names)s::text[] is null or p.proname = any(%(names)s))
union all  -- a table in a governed schema: not ours, dropped by a full apply
select n.nspname, c.relname, 'table', null, pg_get_userbyid(c.relowner), false, false
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p') and %(names)s::text[] is null
