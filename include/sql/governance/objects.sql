-- (A file of include/sql: a literal brace is written twice.)
-- The governance objects that do not depend on the registry (c360.governance applies them; idempotent). The
-- schema governance holds the audit trail (warehouse/bootstrap.sql) and what the masking views and row policies
-- read; no governed role has USAGE on it, so none can call or read anything here by name.

-- The salt of every SHA-256 a governed role sees (C360_PII_SALT, else generated once: README "Governance").
-- Read only by the views' owner (c360_governed): a view joins it, so a reader never sees it.
create table if not exists governance.pii_salt (
    id   boolean primary key default true check (id),  -- one row
    salt text    not null
);
revoke all on governance.pii_salt from public;

-- The registry's row policies (governance.row_policies), as rows: role_name and its members see only rows whose
-- column_name holds one of allowed (as PostgreSQL's text of the value).
create table if not exists governance.row_policy (
    role_name   name   not null,
    column_name name   not null,
    allowed     text[] not null,
    description text,
    primary key (role_name, column_name)
);
revoke all on governance.row_policy from public;

-- The row policies that restrict the user running the query (current_user: a view does not change it) and the
-- roles it is a member of; a superuser is restricted by none (pg_has_role says it is a member of every role).
create or replace view governance.active_row_policy as
select p.role_name, p.column_name, p.allowed
from governance.row_policy p
where pg_has_role(current_user, p.role_name, 'member')
  and not (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user);
revoke all on governance.active_row_policy from public;

-- Masking functions (the rules of c360.governance.RULES). Their bodies name only pg_catalog: a function body
-- is parsed as the caller, who has no USAGE on this schema.
create or replace function governance.pii_sha256(salt text, value text) returns text
language sql immutable parallel safe as $$
    select encode(sha256(convert_to($1 || $2, 'UTF8')), 'hex')
$$;

-- A JSON array element by element (a string element hashed as its text, so it matches the same value's hash in
-- a text column: joins on a hashed key still work), any other JSON value as its text; JSON null stays null.
create or replace function governance.pii_sha256_json(salt text, value jsonb) returns jsonb
language sql immutable parallel safe as $$
    select case jsonb_typeof($2)
        when 'array' then (
            select coalesce(jsonb_agg(case when jsonb_typeof(e) = 'null' then e
                                           else to_jsonb(encode(sha256(convert_to($1 || (e #>> '{{}}'), 'UTF8')), 'hex'))
                                      end order by i), '[]'::jsonb)
            from jsonb_array_elements($2) with ordinality as a(e, i))
        when 'null' then $2
        else to_jsonb(encode(sha256(convert_to($1 || ($2 #>> '{{}}'), 'UTF8')), 'hex'))
    end
$$;

-- Age as its ten years: 34 -> '30-39'; a negative age (a defect) -> NULL.
create or replace function governance.age_range(age bigint) returns text
language sql immutable parallel safe as $$
    select case when $1 >= 0 then ($1 / 10 * 10)::text || '-' || ($1 / 10 * 10 + 9)::text end
$$;

-- Annual income (text in the source) as its 25k band up to 200k: '54000', '$54,000', '54k' -> '50k-75k';
-- 200000 and more -> '200k+'; anything else (empty, words, negative) -> NULL.
create or replace function governance.income_range(income text) returns text
language sql immutable parallel safe as $$
    select case
        when n is null then null
        when n >= 200000 then '200k+'
        else (floor(n / 25000) * 25)::int::text || 'k-' || (floor(n / 25000) * 25 + 25)::int::text || 'k'
    end
    from (select case when v ~ '^[0-9]+(\.[0-9]+)?$' then v::numeric
                      when v ~ '^[0-9]+(\.[0-9]+)?k$' then left(v, -1)::numeric * 1000
                 end as n
          from (select lower(regexp_replace($1, '[[:space:]$,]', '', 'g')) as v) as cleaned) as parsed
$$;
