-- The state a derived product's latest run left (in its publish transaction): the next run advances it.
insert into meta.derived_state (product, as_of, state_uri, snapshot, spec, dag_run_id)
values (%(product)s, %(as_of)s, %(state_uri)s, %(snapshot)s, %(spec)s, %(run_id)s)
on conflict (product) do update set
    as_of = excluded.as_of, state_uri = excluded.state_uri, snapshot = excluded.snapshot, spec = excluded.spec,
    dag_run_id = excluded.dag_run_id, recorded_at = now()
