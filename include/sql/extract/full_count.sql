-- Rows of a full refresh, and the erased persons' rows it leaves in the source.
select count(*) filter (where {kept}), count(*) filter (where not {kept}) from {table} where {watermark} < %(end)s
