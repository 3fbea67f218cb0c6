-- Full refresh: every row as of the interval end (bootstrap and the brand monthly reload).
copy (
    select {columns} from {table} where {watermark} < %(end)s
) to stdout with (format csv, header true)
