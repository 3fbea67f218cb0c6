select count(*) from {table} where {watermark} >= %(start)s and {watermark} < %(end)s
