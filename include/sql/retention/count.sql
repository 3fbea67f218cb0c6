-- The rows of a table about to be dropped (for the audit trail).
select count(*) from {table}
