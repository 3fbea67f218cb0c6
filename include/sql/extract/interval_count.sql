-- Rows of one data interval, and the erased persons' rows it leaves in the source.
select count(*) filter (where {kept}), count(*) filter (where not {kept})
from {table} where {watermark} >= %(start)s and {watermark} < %(end)s
