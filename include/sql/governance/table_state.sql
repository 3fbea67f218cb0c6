-- Row-level security of published tables: enabled?, our policies and their comments (fingerprints), and whether
-- the views' owner and the full-access roles can read the table.
select c.oid::regclass::text as name, c.relrowsecurity as rls,
       coalesce((select jsonb_object_agg(p.polname, coalesce(obj_description(p.oid, 'pg_policy'), ''))
                 from pg_policy p where p.polrelid = c.oid), '{{}}'::jsonb) as policies,
       (select bool_and(has_table_privilege(r, c.oid, 'SELECT'))
        from unnest(array_append(%(full)s::text[], %(owner)s::text)) as r) as readable
from unnest(%(tables)s::text[]) as e(t)
join pg_class c on c.oid = to_regclass(e.t)
