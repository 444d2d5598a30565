-- 007: one index fewer on the insert path.
--
-- transactions_id (id) repeats the leading column of the primary key
-- (id, received_at), which serves every lookup by id as well; each request paid
-- for it twice, at its insert and at its outcome's update (a new row version:
-- the update changes status, which the partial indexes read, so it is never HOT).
DROP INDEX transactions_id;
