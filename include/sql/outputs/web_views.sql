-- The seed 002 lens views over web analytics (c360.web_activity). Recreated by every customer_360 publish that
-- read web analytics (same transaction); a run without it (an absent optional input) leaves them out.

-- The four lens activity entities (seed 002 lens table), with the brand's parent company.
create or replace view c360.lens_activity as
select w.*, b.parent_company
from c360.web_activity w left join c360.brand b on b.brand_name = w.brand_name;

create or replace view c360.lens_product_views as select * from c360.lens_activity where event_action = 'product_view';
create or replace view c360.lens_items_added_to_favourite as select * from c360.lens_activity where event_action = 'add_to_favourite';
create or replace view c360.lens_items_added_to_cart as select * from c360.lens_activity where event_action = 'add_to_cart';
create or replace view c360.lens_order_placed as select * from c360.lens_activity where event_action = 'order_placed';

-- "session engagement time in minute": from visit start to the last product view of the session
create or replace view c360.lens_session_engagement as
select session_id, entity_id,
       round(extract(epoch from max(activity_ts) - min(visit_start_ts)) / 60.0, 2) as engagement_minutes
from c360.lens_product_views
group by session_id, entity_id;

-- Per customer: the lens metrics of views, favourites, carts and orders ("days since" from current_date).
create or replace view c360.lens_customer_activity as
select entity_id,
       count(distinct session_id) filter (where event_action = 'product_view')            as product_view_sessions,
       count(distinct product_sku) filter (where event_action = 'product_view')           as products_viewed,
       current_date - max(activity_ts::date) filter (where event_action = 'product_view') as days_since_last_view,
       count(distinct product_sku) filter (where event_action = 'add_to_favourite')       as items_favourited,
       count(distinct product_sku) filter (where event_action = 'add_to_cart')            as items_added_to_cart,
       sum(quantity) filter (where event_action = 'add_to_cart')                          as quantity_added_to_cart,
       count(distinct transaction_id) filter (where event_action = 'order_placed')        as orders_placed,
       round(sum(order_value) filter (where event_action = 'order_placed')::numeric, 2)   as total_order_value,
       current_date - max(activity_ts::date) filter (where event_action = 'order_placed') as days_since_last_order,
       current_date - max(activity_ts::date)                                              as days_since_last_activity
from c360.web_activity
where entity_id is not null
group by entity_id;

-- "count of total activities" between {{start_day:0}} and {{end_day:365}} days ago (seed 002 order placed)
create or replace function c360.lens_order_count(start_day integer default 0, end_day integer default 365)
returns table (entity_id text, orders bigint) language sql stable as $$
    select entity_id, count(distinct transaction_id)
    from c360.web_activity
    where event_action = 'order_placed' and entity_id is not null
      and current_date - activity_ts::date between start_day and end_day
    group by entity_id
$$;
