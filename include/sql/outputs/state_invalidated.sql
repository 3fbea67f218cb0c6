-- What changed an incremental input other than an incremental publish since the previous export's snapshot
-- (a full refresh's swap, an erasure, a retention purge): rows can have gone, so the next run rebuilds.
select a.action, a.subject, a.detail ->> 'mode' as mode, a.at
from governance.audit_log a
where a.subject = any(%(tables)s)
  and (a.action in ('erasure', 'retention_purge')
       or (a.action = 'publish' and coalesce(a.detail ->> 'mode', '') <> 'incremental'))
  and a.xmin::text::bigint >= 3
  and not pg_visible_in_snapshot(
      (((%(epoch)s::bigint - (a.xmin::text::bigint > %(low)s::bigint)::int) << 32) | a.xmin::text::bigint)::text::xid8,
      %(since)s::pg_snapshot)
order by a.id
