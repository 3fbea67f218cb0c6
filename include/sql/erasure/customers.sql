-- Customers that are the same person by identity resolution's rules (customer360_job.py): one of the ids, or a
-- shared normalised email (trimmed, lower case) or phone (its last 10 digits, when it has 7 or more).
select customer_id, email_address, phone_number from c360.customer
where customer_id = any(%(customer_ids)s::text[])
   or (position('@' in email_address) > 0 and lower(btrim(email_address)) = any(%(emails)s::text[]))
   or (length(regexp_replace(phone_number, '[^0-9]', '', 'g')) >= 7
       and right(regexp_replace(phone_number, '[^0-9]', '', 'g'), 10) = any(%(phones)s::text[]))
