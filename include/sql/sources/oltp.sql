-- The OLTP source system (PostgreSQL): orders, order line items, transactions.
-- Schemas from seed 002, lower-cased; corrections and additions say so.
drop table if exists orders, order_line_item, transactions;
drop schema if exists late cascade;

create table orders (
    order_id            varchar not null,     -- primary key: oltp_indexes.sql
    customer_id         varchar,
    order_date          timestamp not null,   -- seed: "Order_state", described as "Order Date"
    order_status        varchar,              -- added: seed check "Consistency - Order Status"
    order_delivery_date timestamp,
    discounted_amount   double precision,
    shipping_amount     double precision,
    total_amount        double precision,
    payment_method      varchar,
    billing_address     varchar,
    shipping_address    varchar,
    transaction_id      varchar,
    updated_at          timestamp not null    -- added: row version
);

create table order_line_item (
    order_li_id varchar not null,             -- primary key: oltp_indexes.sql
    order_id    varchar not null,
    product_id  varchar,
    qty         int,
    created_at  timestamp not null            -- added: insertion time, the extraction watermark
);

create table transactions (
    transaction_id varchar not null,          -- primary key: oltp_indexes.sql
    order_id       varchar,
    amount         double precision,
    payment_method varchar,
    transaction_ts timestamp not null,
    processed_ts   timestamp,                 -- added: seed check "Timeliness - Transaction Processing Time"
    updated_at     timestamp not null
);

-- Late-arriving rows are held here by the generator and moved into the tables above by
-- `python -m c360.generator deliver-late`, after their interval has already been processed.
create schema late;
create table late.orders (like orders);
create table late.order_line_item (like order_line_item);
create table late.transactions (like transactions);
