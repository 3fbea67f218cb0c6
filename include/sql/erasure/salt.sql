-- The erasure salt: created once (the value offered is kept only by the first caller), then read.
with created as (
    insert into governance.erasure_secret (id, salt) values (1, %(candidate)s)
    on conflict (id) do nothing
    returning salt
)
select salt from created
union all
select salt from governance.erasure_secret where not exists (select 1 from created)
