insert into meta.publish_log
    (dataset, table_name, interval_start, interval_end, dag_run_id, mode, rows_in_batch, rows_published)
values (%(dataset)s, %(table)s, %(start)s, %(end)s, %(run_id)s, %(mode)s, %(batch_rows)s, %(rows)s)
on conflict (dataset, dag_run_id) do update set
    mode = excluded.mode, rows_in_batch = excluded.rows_in_batch,
    rows_published = excluded.rows_published, published_at = now()
