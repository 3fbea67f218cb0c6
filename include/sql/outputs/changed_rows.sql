-- The rows of a published table written by a transaction the previous export's snapshot did not see (a row's
-- xmin widened to xid8 with the current epoch; frozen and bootstrap xids, below 3, are older than any snapshot).
select {columns}, false as {deleted}
from {table} t
where t.xmin::text::bigint >= 3
  and not pg_visible_in_snapshot(
      (((%(epoch)s::bigint - (t.xmin::text::bigint > %(low)s::bigint)::int) << 32) | t.xmin::text::bigint)::text::xid8,
      %(since)s::pg_snapshot)
