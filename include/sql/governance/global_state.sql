-- Whether the global governance objects are in place: the fingerprint of what was applied (the schema's comment),
-- the roles, the governed schemas, and the grants a dropped-and-recreated schema or a table another role created
-- would lack (full-access roles: USAGE, SELECT on every table and view, default privileges; the views' owner: the
-- same on the published schema).
with roles as (
    select count(*) = cardinality(%(roles)s::text[]) as ok from pg_roles where rolname = any(%(roles)s)
), readers as (
    select r.rolname, r.oid as roleid, n.oid as nsp, n.nspname
    from pg_roles r
    join pg_namespace n on n.nspname = any(%(full_schemas)s)
    where r.rolname = any(%(full)s)
    union all
    select r.rolname, r.oid, n.oid, n.nspname
    from pg_roles r join pg_namespace n on n.nspname = %(source)s
    where r.rolname = %(owner)s
)
select coalesce(obj_description(to_regnamespace('governance'), 'pg_namespace') = %(mark)s, false) as fingerprint,
       (select ok from roles) as roles,
       (select count(*) from pg_namespace where nspname = any(%(schemas)s)) = cardinality(%(schemas)s::text[])
           as schemas,
       (select ok from roles) and not exists (
           select from readers x
           where not has_schema_privilege(x.roleid, x.nsp, 'USAGE')
              or not exists (select from pg_default_acl d, aclexplode(d.defaclacl) a
                             where d.defaclnamespace = x.nsp and d.defaclobjtype = 'r' and a.grantee = x.roleid
                               and a.privilege_type = 'SELECT')
              or exists (select from pg_class c
                         where c.relnamespace = x.nsp and c.relkind in ('r', 'p', 'v', 'm')
                           and not has_table_privilege(x.roleid, c.oid, 'SELECT'))) as grants
