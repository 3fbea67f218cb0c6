-- The latest scored run per dataset (by interval end, then by when it was scored).
select distinct on (dataset)
    dataset, score, interval_start, interval_end, dag_run_id, dag_id,
    checks_passed, checks_warned, checks_failed, checks_not_evaluated, scored_at
from quality.dataset_scores
order by dataset, interval_end desc, scored_at desc
