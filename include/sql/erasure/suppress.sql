-- Suppress one hashed id of an erased person (kept from the first request that named it).
insert into governance.erasure_suppression (kind, id_hash, request_id)
values (%(kind)s, %(id_hash)s, %(request_id)s)
on conflict (kind, id_hash) do nothing
