-- The identities of every profile identity resolution made of one of these customer ids or visitor ids.
select customer_ids, emails, phones, device_ids from c360.customer_profile
where customer_ids ?| %(customer_ids)s::text[] or device_ids ?| %(visitor_ids)s::text[]
