-- The "warehouse" source system: stands in for AWS Redshift (same wire protocol as PostgreSQL).
-- Schemas from seed 002 "DATA SCHEMAS", lower-cased; corrections and additions say so.
-- Like Redshift, no primary keys are enforced: duplicate ids can and do occur (see generator defects).
drop table if exists customer, product, brand;

create table customer (
    customer_id       varchar,
    first_name        varchar,
    last_name         varchar,
    gender            varchar,
    phone_number      varchar,
    email_address     varchar,
    date_of_birth     timestamp,
    age               int,
    education_level   varchar,
    marital_status    varchar,
    no_of_children    int,          -- seed: "no._of_children"
    registration_date timestamp,
    occupation        varchar,
    hobbies           varchar,
    annual_income     varchar,      -- VARCHAR in the seed
    degree_of_loyalty int,
    mailing_street    varchar,
    city              varchar,
    state             varchar,
    country           varchar,
    zipcode           varchar,
    consent_marketing   boolean,    -- added: seed 003 profile consent flags
    consent_analytics   boolean,
    consent_third_party boolean,
    updated_at        timestamp not null   -- added: change watermark
);

create table product (
    sku_id              varchar,
    product_id          varchar,
    product_name        varchar,
    product_description varchar,    -- added: seed quality check "Missing Values - Description"
    product_category    varchar,
    product_subcategory varchar,
    brand_id            varchar,
    product_colour      varchar,
    product_size        varchar,
    list_price          double precision,
    sale_price          double precision,
    launched_ts         timestamp,
    updated_at          timestamp not null
);

create table brand (
    brand_id       varchar,
    brand_name     varchar,
    parent_company varchar,
    description    varchar,
    brand_type     varchar,
    website        varchar,
    founded_year   varchar,
    headquarters   varchar,
    updated_at     timestamp not null
);
