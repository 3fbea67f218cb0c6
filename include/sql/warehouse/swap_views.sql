-- Views reading the table directly. A view is bound to the table it was created on, not to its name, so
-- these are recreated from their definitions after the swap (views on these views follow by themselves), with
-- their options (a security barrier stays one).
select distinct v.oid::regclass::text as view_name, pg_get_viewdef(v.oid) as definition, v.reloptions as options
from pg_depend d
join pg_rewrite r on r.oid = d.objid
join pg_class v on v.oid = r.ev_class
where d.classid = 'pg_rewrite'::regclass
  and d.refclassid = 'pg_class'::regclass
  and d.refobjid = %(table)s::regclass
  and v.oid <> d.refobjid
  and v.relkind = 'v'
order by view_name
