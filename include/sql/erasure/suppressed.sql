-- Every suppressed hashed id, by kind.
select kind, array_agg(id_hash order by id_hash) from governance.erasure_suppression group by kind
