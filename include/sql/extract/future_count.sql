-- Source rows dated after the extract's clock (plus a skew allowance): in no interval yet, so flagged, not lost.
select count(*) from {table} where {watermark} > (now() at time zone 'UTC') + interval '5 minutes'
