-- Current views and the seed 002 lens view over segments. Recreated by every customer_360 publish (same
-- transaction); the lens views over web analytics are in web_views.sql.

create or replace view c360.rfm as
select * from c360.rfm_history where as_of_date = (select max(as_of_date) from c360.rfm_history);

-- seed 002 Segment entity: segment_name, customer_id (a customer may be in several)
create or replace view c360.segment as
select segment_name, customer_id, segment_type, as_of_date from c360.segment_membership_history
where as_of_date = (select max(as_of_date) from c360.segment_membership_history);

-- Sample lens query: select total_customers, segment_name from c360.lens_segment_customers where state = 'California'
create or replace view c360.lens_segment_customers as
select c.state, s.segment_name, count(distinct c.customer_id) as total_customers
from c360.customer c join c360.segment s using (customer_id)
group by c.state, s.segment_name;

-- The audiences (segment_type 'audience') as marketing uses them: a customer is listed only while their marketing
-- consent holds (consent_marketing true; NULL = never asked = no consent), with the contact details a campaign
-- needs. Who sees those details as they are is the reader's role (README "Governance"); the marketing roles see
-- only consenting customers in every relation anyway (a row policy).
create or replace view c360.marketing_audience as
select s.segment_name, s.customer_id, c.first_name, c.last_name, c.email_address, c.phone_number, s.as_of_date
from c360.segment s join c360.customer c using (customer_id)
where s.segment_type = 'audience' and c.consent_marketing;
