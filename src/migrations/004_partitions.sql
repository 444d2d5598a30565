-- 004: monthly partitions, so that removing old transactions is a cheap DROP of
-- a month rather than a slow DELETE that leaves the table as large as before.
--
-- transactions is partitioned by received_at, attempts by its transaction's
-- received_at (tx_received_at), month by month (UTC): a month of attempts goes
-- with its month of transactions. Partitions are made ahead of time by
-- hibus_ensure_partitions(), which hibus calls at start and at every prune.
-- There is no foreign key from attempts to transactions: PostgreSQL will not
-- drop a referenced partition, and hibus writes both sides itself.

ALTER TABLE transactions RENAME TO transactions_unpartitioned;
ALTER TABLE attempts RENAME TO attempts_unpartitioned;
ALTER INDEX transactions_received_at RENAME TO transactions_unpartitioned_received_at;
ALTER INDEX transactions_channel_received_at RENAME TO transactions_unpartitioned_channel_received_at;
ALTER INDEX transactions_unfinished RENAME TO transactions_unpartitioned_unfinished;
ALTER INDEX transactions_due RENAME TO transactions_unpartitioned_due;
ALTER INDEX transactions_leases RENAME TO transactions_unpartitioned_leases;
ALTER INDEX transactions_order RENAME TO transactions_unpartitioned_order;
ALTER INDEX attempts_transaction RENAME TO attempts_unpartitioned_transaction;
ALTER INDEX transactions_pkey RENAME TO transactions_unpartitioned_pkey;
ALTER INDEX attempts_pkey RENAME TO attempts_unpartitioned_pkey;

CREATE SEQUENCE hibus_transaction_ids;
SELECT setval('hibus_transaction_ids',
              coalesce((SELECT max(id) FROM transactions_unpartitioned), 0) + 1, false);
CREATE SEQUENCE hibus_attempt_ids;
SELECT setval('hibus_attempt_ids',
              coalesce((SELECT max(id) FROM attempts_unpartitioned), 0) + 1, false);

CREATE TABLE transactions (
    id               bigint      NOT NULL DEFAULT nextval('hibus_transaction_ids'),
    request_id       text        NOT NULL,
    channel          text        NOT NULL,
    client           text,
    method           text        NOT NULL,
    path             text        NOT NULL,
    query            text,
    request_headers  jsonb       NOT NULL DEFAULT '{}',
    request_body     bytea,
    status           text        NOT NULL
        CHECK (status IN ('queued', 'processing', 'successful', 'completed',
                          'completed_with_errors', 'failed', 'rejected')),
    node             text,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    error            text,
    problems         jsonb,
    mode             text        NOT NULL DEFAULT 'sync' CHECK (mode IN ('sync', 'async')),
    rounds           integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_until      timestamptz,
    order_key        text,
    rerun_at         timestamptz,
    bodies_pruned_at timestamptz,            -- when retention removed the bodies
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE hibus_transaction_ids OWNED BY transactions.id;

CREATE TABLE attempts (
    id                bigint      NOT NULL DEFAULT nextval('hibus_attempt_ids'),
    transaction_id    bigint      NOT NULL,
    tx_received_at    timestamptz NOT NULL,  -- the transaction's received_at: the partition key
    route             text        NOT NULL,
    attempt           integer     NOT NULL,
    method            text        NOT NULL,
    url               text        NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms       double precision NOT NULL DEFAULT 0,
    status_code       integer,
    error             text,
    response_headers  jsonb,
    response_excerpt  bytea,
    details           jsonb,
    outcome           text,
    retryable         boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (id, tx_received_at)
) PARTITION BY RANGE (tx_received_at);
ALTER SEQUENCE hibus_attempt_ids OWNED BY attempts.id;

-- Makes the monthly partitions (UTC months) of both tables from the month of
-- "first" on, for "months" months; returns how many months were new.
CREATE FUNCTION hibus_ensure_partitions(first timestamptz, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m timestamp;
    lo text;
    hi text;
    suffix text;
    made integer := 0;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        m := date_trunc('month', first AT TIME ZONE 'UTC') + make_interval(months => i);
        lo := to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00';
        hi := to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00';
        suffix := to_char(m, '"y"YYYY"m"MM');
        IF to_regclass('transactions_' || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF transactions FOR VALUES FROM (%L) TO (%L)',
                           'transactions_' || suffix, lo, hi);
            made := made + 1;
        END IF;
        IF to_regclass('attempts_' || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF attempts FOR VALUES FROM (%L) TO (%L)',
                           'attempts_' || suffix, lo, hi);
        END IF;
    END LOOP;
    RETURN made;
END;
$$;

SELECT hibus_ensure_partitions(
    coalesce((SELECT min(received_at) FROM transactions_unpartitioned), clock_timestamp()),
    (SELECT (extract(year FROM age(date_trunc('month', clock_timestamp()),
                                   date_trunc('month', coalesce(min(received_at), clock_timestamp())))) * 12
           + extract(month FROM age(date_trunc('month', clock_timestamp()),
                                    date_trunc('month', coalesce(min(received_at), clock_timestamp())))))::integer
            + 3
       FROM transactions_unpartitioned));

INSERT INTO transactions (id, request_id, channel, client, method, path, query, request_headers,
                          request_body, status, node, received_at, updated_at, finished_at,
                          response_status, response_headers, response_body, error, problems, mode,
                          rounds, next_attempt_at, lease_owner, lease_until, order_key, rerun_at)
SELECT id, request_id, channel, client, method, path, query, request_headers, request_body, status,
       node, received_at, updated_at, finished_at, response_status, response_headers,
       response_body, error, problems, mode, rounds, next_attempt_at, lease_owner, lease_until,
       order_key, rerun_at
  FROM transactions_unpartitioned;

INSERT INTO attempts (id, transaction_id, tx_received_at, route, attempt, method, url, started_at,
                      duration_ms, status_code, error, response_headers, response_excerpt, details,
                      outcome, retryable)
SELECT a.id, a.transaction_id, t.received_at, a.route, a.attempt, a.method, a.url, a.started_at,
       a.duration_ms, a.status_code, a.error, a.response_headers, a.response_excerpt, a.details,
       a.outcome, a.retryable
  FROM attempts_unpartitioned a JOIN transactions_unpartitioned t ON t.id = a.transaction_id;

DROP TABLE attempts_unpartitioned;
DROP TABLE transactions_unpartitioned;

CREATE INDEX transactions_id ON transactions (id);
CREATE INDEX transactions_received_at ON transactions (received_at);
CREATE INDEX transactions_channel_received_at ON transactions (channel, received_at);
CREATE INDEX transactions_unfinished ON transactions (status)
    WHERE status IN ('queued', 'processing');
CREATE INDEX transactions_due ON transactions (next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX transactions_leases ON transactions (lease_until) WHERE status = 'processing';
CREATE INDEX transactions_order ON transactions (order_key, id)
    WHERE order_key IS NOT NULL AND status IN ('queued', 'processing');
CREATE INDEX attempts_transaction ON attempts (transaction_id);

CREATE TRIGGER transactions_notify_insert AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION hibus_tx_notify();
CREATE TRIGGER transactions_notify_status AFTER UPDATE OF status ON transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION hibus_tx_notify();
CREATE TRIGGER transactions_queue_insert AFTER INSERT ON transactions
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION hibus_queue_notify();
CREATE TRIGGER transactions_queue_update AFTER UPDATE OF status ON transactions
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION hibus_queue_notify();

-- Drops the monthly partitions of both tables that end before cutoff, unless a
-- transaction in them is still queued or being delivered; returns how many
-- months were dropped.
CREATE FUNCTION hibus_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p record;
    month_end timestamptz;
    busy boolean;
    dropped integer := 0;
BEGIN
    FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'transactions'::regclass AND c.relname ~ '^transactions_y[0-9]{4}m[0-9]{2}$'
    LOOP
        month_end := (to_timestamp(substr(p.relname, 14), '"y"YYYY"m"MM')::timestamp
                      + interval '1 month') AT TIME ZONE 'UTC';
        CONTINUE WHEN month_end > cutoff;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE status IN (''queued'', ''processing''))',
                       p.relname) INTO busy;
        CONTINUE WHEN busy;
        EXECUTE format('DROP TABLE IF EXISTS %I', 'attempts_' || substr(p.relname, 14));
        EXECUTE format('DROP TABLE %I', p.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END;
$$;
