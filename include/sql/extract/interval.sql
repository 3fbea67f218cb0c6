-- Rows of one data interval, by the dataset's watermark column: [start, end).
copy (
    select {columns} from {table}
    where {watermark} >= %(start)s and {watermark} < %(end)s
) to stdout with (format csv, header true)
