-- Indexes of the warehouse source tables, built after the generator's bulk load.
create index on customer (updated_at);
create index on product (updated_at);
create index on brand (updated_at);
