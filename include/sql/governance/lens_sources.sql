-- The views and functions of the published schema (the lens, include/sql/outputs/), as each governed role's
-- schema re-creates them: definition (names qualified: run with search_path = pg_catalog), a function's identity
-- arguments, whether it is security definer, and the relations a view reads outside that schema.
select c.relname as name, 'view' as kind, pg_get_viewdef(c.oid) as definition, null as args, false as secdef,
       array(select distinct d.refobjid::regclass::text
             from pg_rewrite r
             join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
                             and d.refclassid = 'pg_class'::regclass and d.refobjid <> c.oid
             join pg_class rc on rc.oid = d.refobjid
             where r.ev_class = c.oid and rc.relnamespace <> c.relnamespace) as "foreign"
from pg_class c
where c.relnamespace = %(schema)s::regnamespace and c.relkind = 'v'
union all
select p.proname, 'function', pg_get_functiondef(p.oid), pg_get_function_identity_arguments(p.oid), p.prosecdef,
       '{{}}'::text[]
from pg_proc p
where p.pronamespace = %(schema)s::regnamespace and p.prokind = 'f'
order by 1
