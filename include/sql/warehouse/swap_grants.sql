-- The privileges granted on the table (readers keep their access after the swap). Grantee 0 is PUBLIC.
select a.privilege_type, (select rolname from pg_roles where oid = a.grantee) as grantee
from pg_class c, aclexplode(c.relacl) a
where c.oid = %(table)s::regclass and a.grantee <> c.relowner
