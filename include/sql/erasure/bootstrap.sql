-- GDPR erasure: requests, the suppression list of erased persons' hashed ids, and the salt of the hashes (owner only).
create schema if not exists governance;

-- One salt for every hash of an erased person's id (audit trail, suppression list): generated once, never shown;
-- no role but the owner reads it.
create table if not exists governance.erasure_secret (
    id   int  primary key check (id = 1),
    salt text not null
);

-- A request names a customer id in clear only while it is being processed: once done, customer_id and the
-- identifiers identity resolution joined to it are set to NULL; subject_hash (salted SHA-256) stays. A refused
-- request (identity resolution joins too many customers) keeps its id for the steward who reviews it.
create table if not exists governance.erasure_requests (
    id           bigint      generated always as identity primary key,
    requested_at timestamptz not null default now(),
    requested_by text        not null default session_user,
    customer_id  text,
    subject_hash text,
    status       text        not null default 'pending'
                             check (status in ('pending', 'erasing', 'done', 'refused')),
    identifiers  jsonb,      -- the resolved person (ids, emails, phones, linked keys) while erasing
    dag_run_id   text,
    completed_at timestamptz,
    counts       jsonb,      -- rows removed per table and lake layer; why it was refused
    check (status = 'done' or customer_id is not null),  -- a request names someone until it is done
    check (status <> 'done' or (customer_id is null and identifiers is null))
);

-- Erased persons' ids (salted SHA-256 per kind: customer_id, visitor_id): the extracts leave their rows in the
-- sources, so later extracts, reruns and backfills never bring them back.
create table if not exists governance.erasure_suppression (
    kind          text        not null check (kind in ('customer_id', 'visitor_id')),
    id_hash       text        not null,
    request_id    bigint      not null,
    suppressed_at timestamptz not null default now(),
    primary key (kind, id_hash)
);

revoke all on governance.erasure_secret, governance.erasure_requests, governance.erasure_suppression from public;
