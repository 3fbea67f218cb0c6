-- Full refresh: every row as of the interval end (bootstrap and the brand monthly reload), but erased persons'.
copy (
    select {columns} from {table} where {watermark} < %(end)s and {kept}
) to stdout with (format csv, header true)
