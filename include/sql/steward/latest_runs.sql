-- Per dataset: its latest scored run (by interval end, then by when it was scored), at its latest attempt,
-- with its publish (meta.publish_log) when it published.
select distinct on (h.dataset)
    h.dataset, h.interval_start, h.interval_end, h.dag_run_id, h.dag_id, h.attempt, h.try_number, h.score,
    h.checks_passed, h.checks_warned, h.checks_failed, h.checks_not_evaluated, h.scored_at,
    p.published_at, p.rows_published
from quality.score_history h
left join meta.publish_log p on p.dataset = h.dataset and p.dag_run_id = h.dag_run_id
order by h.dataset, h.interval_end desc, h.scored_at desc
