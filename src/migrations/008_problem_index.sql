-- 008: the newest failed, rejected or partly failed transactions of a channel,
-- found at once.
--
-- These are what an operator looks for, and they are rare: on bench/large-log's
-- 10 M rows (1 in 200 rejected) the newest 100 rejected of one channel a month
-- back took 15 ms from a new connection, reading the channel's index and
-- skipping every other status. The index is partial: a transaction that ends
-- successful or completed, the common case, never gets an entry, so the insert
-- and the outcome of a normal request do not maintain it.
CREATE INDEX transactions_problems ON transactions (channel, status, received_at)
    WHERE status IN ('completed_with_errors', 'failed', 'rejected');
