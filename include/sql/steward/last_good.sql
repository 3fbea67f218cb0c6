-- Per dataset: its latest published run (by interval end) and the score of the attempt that published it
-- (the run's latest attempt without a failed check scored before the publish).
select distinct on (p.dataset)
    p.dataset, p.interval_start, p.interval_end, p.dag_run_id, p.published_at, p.rows_published, h.score, h.attempt
from meta.publish_log p
left join lateral (
    select score, attempt from quality.score_history h
    where h.dataset = p.dataset and h.dag_run_id = p.dag_run_id and h.checks_failed = 0
      and h.scored_at <= p.published_at
    order by h.attempt desc limit 1
) h on true
order by p.dataset, p.interval_end desc, p.published_at desc
