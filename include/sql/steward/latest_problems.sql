-- The checks that did not pass in the given attempts (dataset, run, attempt), failed first.
select c.dataset, c.check_name, c.column_name, c.outcome, c.measured_value, c.threshold, c.severity, c.unit,
       c.diagnostics
from quality.check_history c
join (select unnest(%(datasets)s::text[]) as dataset, unnest(%(runs)s::text[]) as dag_run_id,
             unnest(%(attempts)s::int[]) as attempt) k using (dataset, dag_run_id, attempt)
where c.outcome in ('failed', 'warned', 'not_evaluated')
order by c.dataset, case c.outcome when 'failed' then 0 when 'warned' then 1 else 2 end, c.check_name
