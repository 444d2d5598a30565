-- 001: the transaction log. One row per inbound request, one per delivery attempt.

CREATE TABLE transactions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id       text        NOT NULL,
    channel          text        NOT NULL,
    client           text,
    method           text        NOT NULL,
    path             text        NOT NULL,
    query            text,
    request_headers  jsonb       NOT NULL DEFAULT '{}',
    request_body     bytea,                 -- exactly as received
    status           text        NOT NULL
        CHECK (status IN ('queued', 'processing', 'successful', 'completed',
                          'completed_with_errors', 'failed', 'rejected')),
    node             text,                  -- host:pid of the hibus that took it
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    error            text
);

CREATE INDEX transactions_received_at ON transactions (received_at);
CREATE INDEX transactions_channel_received_at ON transactions (channel, received_at);
CREATE INDEX transactions_unfinished ON transactions (status)
    WHERE status IN ('queued', 'processing');

CREATE TABLE attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id    bigint      NOT NULL REFERENCES transactions (id) ON DELETE CASCADE,
    route             text        NOT NULL,
    attempt           integer     NOT NULL,
    method            text        NOT NULL,
    url               text        NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms       double precision NOT NULL DEFAULT 0,
    status_code       integer,               -- NULL when the target did not answer
    error             text,
    response_headers  jsonb,
    response_excerpt  bytea
);

CREATE INDEX attempts_transaction ON attempts (transaction_id);

-- Every insert and every change of status is announced, so `hibus tail` and the
-- delivery workers follow without polling. The payload is the id alone: NOTIFY
-- payloads are capped at 8000 bytes and listeners read the row anyway.
CREATE FUNCTION hibus_tx_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hibus_tx', NEW.id::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER transactions_notify_insert AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION hibus_tx_notify();
CREATE TRIGGER transactions_notify_status AFTER UPDATE OF status ON transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION hibus_tx_notify();
