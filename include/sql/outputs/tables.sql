-- Customer 360 outputs (include/spark/customer360_job.py). Column order = the Spark job's output order.
-- Text key columns compare byte-wise (collation "C"): ids have no linguistic order; their indexes build faster.
create schema if not exists c360;

create table if not exists c360.orders_enriched (
    order_id            text collate "C" not null,
    order_li_id         text collate "C",          -- NULL for an order without line items
    customer_id         text,
    order_date          timestamp,
    order_status        text,
    payment_method      text,
    product_id          text,
    product_name        text,
    product_category    text,
    product_subcategory text,
    brand_id            text,
    brand_name          text,
    parent_company      text,
    qty                 integer,
    unit_price          numeric(18, 2),
    line_amount         numeric(18, 2),
    order_total_amount  numeric(18, 2),
    discounted_amount   numeric(18, 2),
    shipping_amount     numeric(18, 2),
    transaction_id      text,
    paid_amount         numeric(18, 2),
    refunded_amount     numeric(18, 2)
);
create unique index if not exists orders_enriched_line on c360.orders_enriched (order_id, coalesce(order_li_id, ''));

create table if not exists c360.rfm_history (
    as_of_date      date    not null,
    customer_id     text    collate "C" not null,
    last_order_date date,
    recency_days    integer not null,
    frequency       integer not null,
    monetary        numeric(18, 2) not null,
    r_score         integer not null check (r_score between 1 and 5),
    f_score         integer not null check (f_score between 1 and 5),
    m_score         integer not null check (m_score between 1 and 5),
    rfm_score       text    not null,
    rfm_segment     text    not null,
    primary key (as_of_date, customer_id)
);

create table if not exists c360.segment_membership_history (
    as_of_date   date not null,
    segment_name text collate "C" not null,
    customer_id  text collate "C" not null,
    segment_type text not null check (segment_type in ('audience', 'rfm')),
    primary key (as_of_date, segment_name, customer_id)
);

create table if not exists c360.customer_profile (
    profile_id          text collate "C" primary key,
    as_of_date          date not null,
    customer_ids        jsonb not null,
    emails              jsonb,
    phones              jsonb,
    device_ids          jsonb,
    first_name          text,
    last_name           text,
    age                 integer,
    gender              text,
    city                text,
    state               text,
    country             text,
    total_purchases     integer,
    total_spend         numeric(18, 2),
    avg_order_value     numeric(18, 2),
    last_purchase       date,
    favorite_categories jsonb,
    r_score             integer,
    f_score             integer,
    m_score             integer,
    rfm_segment         text,
    engagement_score    integer,
    preferred_channel   text,
    last_interaction    date,
    consent_marketing   boolean,
    consent_analytics   boolean,
    consent_third_party boolean,
    profile             jsonb not null   -- the seed 003 Customer Profile document
);
