insert into quality.check_history
    (dataset, dag_run_id, attempt, interval_start, interval_end, dag_id, check_name, column_name, outcome,
     measured_value, threshold, severity, diagnostics, unit)
values (%(dataset)s, %(run_id)s, %(attempt)s, %(start)s, %(end)s, %(dag_id)s, %(check)s, %(column)s, %(outcome)s,
        %(value)s, %(threshold)s, %(severity)s, %(diagnostics)s, %(unit)s)
