-- The checks of one run, every attempt (the latest first), with what Soda measured.
select attempt, check_name, column_name, outcome, measured_value, threshold, severity, diagnostics, unit,
       checked_at
from quality.check_history
where dataset = %(dataset)s and dag_run_id = %(run_id)s
order by attempt desc,
         case outcome when 'failed' then 0 when 'warned' then 1 when 'not_evaluated' then 2 else 3 end, check_name
