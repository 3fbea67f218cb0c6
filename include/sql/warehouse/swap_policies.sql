-- The table's row-level security policies (a policy belongs to its table: the batch gets them anew), as their
-- parts: name, permissive or restrictive, command, roles, USING and WITH CHECK (from the catalog), comment.
select p.polname as name, p.polpermissive as permissive,
       case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update' when 'd' then 'delete'
                     else 'all' end as command,
       array(select case when r = 0 then 'public' else quote_ident(pg_get_userbyid(r)) end
             from unnest(p.polroles) as r) as roles,
       pg_get_expr(p.polqual, p.polrelid) as using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) as check_expr,
       obj_description(p.oid, 'pg_policy') as comment
from pg_policy p
where p.polrelid = %(table)s::regclass
order by p.polname
