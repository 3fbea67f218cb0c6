insert into quality.check_results
    (dataset, interval_start, interval_end, dag_run_id, dag_id, check_name, column_name, outcome, measured_value,
     unit, threshold, severity)
values (%(dataset)s, %(start)s, %(end)s, %(run_id)s, %(dag_id)s, %(check)s, %(column)s, %(outcome)s, %(value)s,
        %(unit)s, %(threshold)s, %(severity)s)
