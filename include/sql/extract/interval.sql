-- Rows of one data interval, by the dataset's watermark column: [start, end), but erased persons'.
copy (
    select {columns} from {table}
    where {watermark} >= %(start)s and {watermark} < %(end)s and {kept}
) to stdout with (format csv, header true)
