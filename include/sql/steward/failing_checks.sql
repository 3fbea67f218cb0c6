-- Checks of one run that did not pass: measured value against the threshold.
select check_name, column_name, outcome, measured_value, threshold, severity
from quality.check_results
where dataset = %s and dag_run_id = %s and outcome in ('failed', 'warned')
order by outcome, check_name
