select count(*) from {table} where {watermark} < %(end)s
