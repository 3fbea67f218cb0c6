-- One check of one dataset over time: every attempt, newest first.
select c.interval_start, c.interval_end, c.dag_run_id, c.dag_id, c.attempt, c.outcome, c.measured_value,
       c.threshold, c.severity, c.unit, c.diagnostics, c.checked_at, p.published_at
from quality.check_history c
left join meta.publish_log p on p.dataset = c.dataset and p.dag_run_id = c.dag_run_id
where c.dataset = %(dataset)s and c.check_name = %(check)s
order by c.interval_end desc, c.attempt desc
limit %(limit)s
