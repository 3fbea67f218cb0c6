-- Warehouse schemas: published tables (c360), write-audit-publish staging, quality results, publish log.
create schema if not exists c360;
create schema if not exists staging;
create schema if not exists quality;
create schema if not exists meta;

-- One row per check per DAG run; a rerun of the same run replaces its rows (delete + insert, one transaction).
create table if not exists quality.check_results (
    dataset        text        not null,
    interval_start timestamptz not null,
    interval_end   timestamptz not null,
    dag_run_id     text        not null,
    dag_id         text,
    check_name     text        not null,
    column_name    text,
    outcome        text        not null check (outcome in ('passed', 'warned', 'failed', 'not_evaluated')),
    measured_value double precision,
    threshold      text,
    severity       text        not null check (severity in ('blocking', 'warning')),
    checked_at     timestamptz not null default now(),
    primary key (dataset, dag_run_id, check_name)
);
-- unit of measured_value ('%', 'rows', 'minutes', 'hours', 'days', 'mismatches'; NULL for a metric check's own
-- value); added to warehouses bootstrapped before it, whose older rows keep NULL. Every task runs this file,
-- often inside its transaction, and an alter table locks the table exclusively even when the column exists:
-- so only when it is missing.
do $$
begin
    if not exists (select 1 from information_schema.columns
                   where table_schema = 'quality' and table_name = 'check_results' and column_name = 'unit') then
        alter table quality.check_results add column if not exists unit text;
    end if;
end
$$;

-- Score per dataset per DAG run: 100 * passed / evaluated (see quality/README.md).
create table if not exists quality.dataset_scores (
    dataset              text        not null,
    interval_start       timestamptz not null,
    interval_end         timestamptz not null,
    dag_run_id           text        not null,
    dag_id               text,
    score                numeric(5, 2),
    checks_passed        int         not null,
    checks_warned        int         not null,
    checks_failed        int         not null,
    checks_not_evaluated int         not null,
    scored_at            timestamptz not null default now(),
    primary key (dataset, dag_run_id)
);

create table if not exists meta.publish_log (
    dataset        text        not null,
    table_name     text        not null,
    interval_start timestamptz not null,
    interval_end   timestamptz not null,
    dag_run_id     text        not null,
    mode           text        not null,
    rows_in_batch  bigint      not null,
    rows_published bigint      not null,
    published_at   timestamptz not null default now(),
    primary key (dataset, dag_run_id)
);

-- Every attempt of every run, kept: check_results and dataset_scores hold a run's latest attempt (a rerun
-- replaces them); these append one row per attempt (a rerun adds one), so a blocked attempt stays in the
-- history after a rerun passes. attempt counts the run's recorded attempts (1, 2, …); try_number is the
-- Airflow try of the task that recorded it (NULL outside a task). Their columns repeat dataset_scores' and
-- check_results' on purpose: a history row is the latest-attempt row as it was, plus its attempt.
create table if not exists quality.score_history (
    dataset              text        not null,
    interval_start       timestamptz not null,
    interval_end         timestamptz not null,
    dag_run_id           text        not null,
    dag_id               text,
    attempt              int         not null,
    try_number           int,
    score                numeric(5, 2),
    checks_passed        int         not null,
    checks_warned        int         not null,
    checks_failed        int         not null,
    checks_not_evaluated int         not null,
    scored_at            timestamptz not null default now(),
    primary key (dataset, dag_run_id, attempt)
);
create index if not exists score_history_by_interval on quality.score_history (dataset, interval_end);

create table if not exists quality.check_history (
    dataset        text        not null,
    dag_run_id     text        not null,
    attempt        int         not null,
    interval_start timestamptz not null,
    interval_end   timestamptz not null,
    dag_id         text,
    check_name     text        not null,
    column_name    text,
    outcome        text        not null,
    measured_value double precision,
    threshold      text,
    severity       text        not null,
    diagnostics    jsonb,      -- what Soda measured (e.g. missing_count, missing_percent, check_rows_tested)
    checked_at     timestamptz not null default now(),
    primary key (dataset, dag_run_id, attempt, check_name)
);
create index if not exists check_history_by_check on quality.check_history (dataset, check_name, interval_end);
alter table quality.check_history add column if not exists unit text;  -- the measured value's unit, when known

-- Runs scored before the history existed become attempt 1 (once: only while the history is empty).
insert into quality.score_history
    (dataset, interval_start, interval_end, dag_run_id, dag_id, attempt, score, checks_passed, checks_warned,
     checks_failed, checks_not_evaluated, scored_at)
select dataset, interval_start, interval_end, dag_run_id, dag_id, 1, score, checks_passed, checks_warned,
       checks_failed, checks_not_evaluated, scored_at
from quality.dataset_scores
where not exists (select 1 from quality.score_history)
on conflict do nothing;
insert into quality.check_history
    (dataset, dag_run_id, attempt, interval_start, interval_end, dag_id, check_name, column_name, outcome,
     measured_value, threshold, severity, checked_at)
select dataset, dag_run_id, 1, interval_start, interval_end, dag_id, check_name, column_name, outcome,
       measured_value, threshold, severity, checked_at
from quality.check_results
where not exists (select 1 from quality.check_history)
on conflict do nothing;

-- The audit trail (seed 002 "Audit Trails"): every publish, erasure, retention purge and policy change, with
-- who did it, the DAG run, when and how many rows. Append-only: a trigger refuses update, delete and truncate
-- to every role (the owner can only drop the trigger, which is itself a visible schema change); no other role
-- is granted anything on it.
create schema if not exists governance;
create table if not exists governance.audit_log (
    id         bigint generated always as identity primary key,
    at         timestamptz not null default clock_timestamp(),
    action     text        not null check (action in ('publish', 'erasure', 'retention_purge', 'policy_change')),
    actor      text        not null,  -- the Airflow user who triggered the run, else the database user
    dag_id     text,
    dag_run_id text,
    subject    text        not null,  -- the table, dataset, role or request acted on
    rows       bigint,
    detail     jsonb
);
create or replace function governance.refuse_audit_change() returns trigger language plpgsql as $$
begin
    raise exception 'governance.audit_log is append-only: % is refused', tg_op;
end
$$;
create or replace trigger audit_log_append_only before update or delete on governance.audit_log
    for each row execute function governance.refuse_audit_change();
create or replace trigger audit_log_no_truncate before truncate on governance.audit_log
    for each statement execute function governance.refuse_audit_change();
revoke all on governance.audit_log from public;

-- The state an incremental derived-product run advances (c360.products): the Spark job's state folder as of
-- the product's published current outputs, and the snapshot of the export it was built from (the next run
-- exports the rows written by transactions that snapshot did not see). Written in the publish transaction.
create table if not exists meta.derived_state (
    product     text        primary key,
    as_of       timestamptz not null,
    state_uri   text        not null,
    snapshot    text        not null,  -- pg_snapshot of the export, as text
    spec        text        not null,  -- fingerprint of the segments spec the state was computed with
    dag_run_id  text,
    recorded_at timestamptz not null default now()
);
