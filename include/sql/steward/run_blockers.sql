-- The datasets of the given DAG runs whose latest attempt failed a check (a derived product publishes all of
-- its outputs or none, so one output's failure blocks the others). Run ids repeat across DAGs: match dag_id.
select dag_run_id, dag_id, dataset from (
    select distinct on (dataset, dag_run_id) dag_run_id, dag_id, dataset, checks_failed
    from quality.score_history
    where dag_run_id = any(%(runs)s)
    order by dataset, dag_run_id, attempt desc
) t
where checks_failed > 0
