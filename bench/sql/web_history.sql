-- Synthetic web history for the benchmark: the published rows of one hour, copied into each of the
-- %(hours)s hours before it (new activity and session ids), so the hourly run meets a table of that depth.
insert into c360.web_activity (
    activity_uuid, session_id, visit_start_ts, entity_id, activity_ts, activity_year, activity_month,
    product_sku, product_name, category_name, subcategory_name, brand_name, product_price, quantity,
    order_value, event_action, traffic_channel, traffic_source, occurence, activity_repeated_at, transaction_id
)
select md5(w.activity_uuid || ':' || h), w.session_id || ':' || h, w.visit_start_ts - h * interval '1 hour',
       w.entity_id, w.activity_ts - h * interval '1 hour', w.activity_year, w.activity_month,
       w.product_sku, w.product_name, w.category_name, w.subcategory_name, w.brand_name, w.product_price,
       w.quantity, w.order_value, w.event_action, w.traffic_channel, w.traffic_source, w.occurence,
       w.activity_repeated_at - h * interval '1 hour', w.transaction_id
from c360.web_activity w
cross join generate_series(%(first)s::int, %(hours)s::int) as h
where w.activity_ts >= %(start)s and w.activity_ts < %(end)s
