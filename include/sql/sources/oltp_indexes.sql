-- Keys and indexes of the OLTP tables, built after the generator's bulk load (one sort per index instead of
-- row-by-row maintenance during COPY).
alter table orders add primary key (order_id);
alter table order_line_item add primary key (order_li_id);
alter table transactions add primary key (transaction_id);
create index on orders (order_date);
create index on order_line_item (created_at);
create index on transactions (transaction_ts);
