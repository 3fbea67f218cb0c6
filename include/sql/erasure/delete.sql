-- The erased person's rows of one table: those any of its registry erasure links matches.
delete from {table} where {linked}
