-- A rerun of the same DAG run replaces its results instead of adding to them.
delete from quality.check_results where dataset = %(dataset)s and dag_run_id = %(run_id)s;
