-- 009: what `hibus ls` and the admin API search by besides channel, status and
-- time: the facility a report came from and the request id a client quotes.
--
-- A report's facility (as its source names it) and period are in its delivery
-- order key ("channel|facility|period", src/delivery.c); the index is on the
-- facility part, for rows that have a key (reports), so pass-through traffic
-- never maintains it. The request id is what a client has in hand when it asks
-- what became of its post; without an index, finding one on 10 M rows reads
-- them all.
CREATE INDEX transactions_facility ON transactions (split_part(order_key, '|', 2), received_at)
    WHERE order_key IS NOT NULL;
CREATE INDEX transactions_request_id ON transactions (request_id);
