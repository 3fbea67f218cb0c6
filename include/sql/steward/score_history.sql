-- The score over time of one dataset, oldest first (its most recent runs, up to the limit).
select interval_end, score, dag_run_id from (
    select interval_end, score, dag_run_id, scored_at from quality.dataset_scores
    where dataset = %s order by interval_end desc, scored_at desc limit %s
) t order by interval_end, scored_at
