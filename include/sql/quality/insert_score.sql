insert into quality.dataset_scores
    (dataset, interval_start, interval_end, dag_run_id, dag_id, score, checks_passed, checks_warned, checks_failed,
     checks_not_evaluated)
values (%(dataset)s, %(start)s, %(end)s, %(run_id)s, %(dag_id)s, %(score)s, %(passed)s, %(warned)s, %(failed)s,
        %(not_evaluated)s)
on conflict (dataset, dag_run_id) do update set
    dag_id = excluded.dag_id, interval_start = excluded.interval_start, interval_end = excluded.interval_end, score = excluded.score,
    checks_passed = excluded.checks_passed, checks_warned = excluded.checks_warned,
    checks_failed = excluded.checks_failed, checks_not_evaluated = excluded.checks_not_evaluated,
    scored_at = now()
