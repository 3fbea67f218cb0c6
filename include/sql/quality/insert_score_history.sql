-- One more attempt of this run (append only: earlier attempts stay). Returns the attempt number.
insert into quality.score_history
    (dataset, interval_start, interval_end, dag_run_id, dag_id, attempt, try_number, score, checks_passed,
     checks_warned, checks_failed, checks_not_evaluated)
select %(dataset)s, %(start)s, %(end)s, %(run_id)s, %(dag_id)s, coalesce(max(attempt), 0) + 1, %(try_number)s,
       %(score)s, %(passed)s, %(warned)s, %(failed)s, %(not_evaluated)s
from quality.score_history
where dataset = %(dataset)s and dag_run_id = %(run_id)s
returning attempt
