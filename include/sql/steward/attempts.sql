-- Every recorded attempt of one dataset's runs (of one run, given %(run_id)s) whose interval ends after
-- %(since)s, newest first, with the run's publish when it published.
select h.interval_start, h.interval_end, h.dag_run_id, h.dag_id, h.attempt, h.try_number, h.score,
       h.checks_passed, h.checks_warned, h.checks_failed, h.checks_not_evaluated, h.scored_at,
       p.published_at, p.rows_published
from quality.score_history h
left join meta.publish_log p on p.dataset = h.dataset and p.dag_run_id = h.dag_run_id
where h.dataset = %(dataset)s and h.interval_end > %(since)s
  and (%(run_id)s::text is null or h.dag_run_id = %(run_id)s)
order by h.interval_end desc, h.scored_at desc
limit %(limit)s
