-- 003: durable asynchronous delivery: a queue inside the transactions table.
--
-- A transaction waiting for delivery is 'queued' with next_attempt_at; a worker
-- claims it with FOR UPDATE SKIP LOCKED, sets 'processing' and a lease
-- (lease_owner, lease_until). A process that dies leaves its leases to expire;
-- any process then claims the transaction again. Nothing is ever locked for
-- longer than one short statement.

ALTER TABLE transactions
    ADD COLUMN mode            text        NOT NULL DEFAULT 'sync'
        CHECK (mode IN ('sync', 'async')),
    ADD COLUMN rounds          integer     NOT NULL DEFAULT 0,  -- delivery rounds started
    ADD COLUMN next_attempt_at timestamptz,                     -- when a queued one is due
    ADD COLUMN lease_owner     text,                            -- host:pid holding the claim
    ADD COLUMN lease_until     timestamptz,                     -- when the claim lapses
    ADD COLUMN order_key       text,       -- channel + facility + period: delivered in arrival order
    ADD COLUMN rerun_at        timestamptz;                     -- set by hibus rerun

CREATE INDEX transactions_due ON transactions (next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX transactions_leases ON transactions (lease_until) WHERE status = 'processing';
CREATE INDEX transactions_order ON transactions (order_key, id)
    WHERE order_key IS NOT NULL AND status IN ('queued', 'processing');

-- What each try of each route came to, so a retry round runs only the routes
-- that are not done yet.
ALTER TABLE attempts
    ADD COLUMN outcome   text,
    ADD COLUMN retryable boolean NOT NULL DEFAULT false;

-- Delivery workers LISTEN on hibus_queue: a transaction became due.
CREATE FUNCTION hibus_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hibus_queue', NEW.id::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER transactions_queue_insert AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION hibus_queue_notify();
CREATE TRIGGER transactions_queue_update AFTER UPDATE OF status ON transactions
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION hibus_queue_notify();
