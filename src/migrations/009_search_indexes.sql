-- 009: what `hibus ls` and the admin API search by besides channel, status and
-- time: the facility and period of a report, and the request id a client quotes.
--
-- A report's facility (as its source names it) and period are in its delivery
-- order key ("channel|facility|period", src/delivery.c); the two indexes are on
-- those parts, for rows that have a key (reports), so pass-through traffic never
-- maintains them. On bench/large-log's 10 M rows, a period that matched nothing
-- read every row (2.4 s) without its index. The request id is what a client has
-- in hand when it asks what became of its post; without an index, finding one
-- reads them all.
CREATE INDEX transactions_facility ON transactions (split_part(order_key, '|', 2), received_at)
    WHERE order_key IS NOT NULL;
CREATE INDEX transactions_period ON transactions (split_part(order_key, '|', 3), received_at)
    WHERE order_key IS NOT NULL;
CREATE INDEX transactions_request_id ON transactions (request_id);
