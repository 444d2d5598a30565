-- 011: the aggregate stage (src/aggregate.c, src/txlog_aggregate.c).
--
-- stock_events holds every stock event a channel with aggregate: took, once: a
-- second event with the same source id (the source's own event id, or a hash of an
-- OpenLMIS line item's content when the event has no id) is a duplicate and is not
-- stored again. occurred_on is the facility's day (aggregate.timezone applied when
-- the source gave a time); tx_id is the transaction that brought the event.
CREATE TABLE stock_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text        NOT NULL,
    source_id   text        NOT NULL,
    facility    text        NOT NULL,
    commodity   text        NOT NULL,
    occurred_on date        NOT NULL,
    occurred_at timestamptz,
    kind        text        NOT NULL CHECK (kind IN ('receipt', 'issue', 'loss', 'adjustment', 'count')),
    quantity    bigint      NOT NULL,
    reason      text,
    tx_id       bigint      NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (channel, source_id)
);
CREATE INDEX stock_events_cell ON stock_events (channel, facility, occurred_on);

-- One row per channel, facility and period that has events: whether it changed
-- since it was last sent (dirty), and what was sent (the transaction, its body, so
-- that an unchanged period is not sent twice). A period is sent once it has
-- closed (its last day over in the facility's time zone, plus aggregate.close_after);
-- an event for a period already sent makes it, and every later period of the
-- facility already sent, dirty again: their balances moved, and they are sent
-- again as corrections. Rows are claimed with FOR UPDATE SKIP LOCKED, so two hibus
-- processes never send one period twice.
CREATE TABLE aggregate_periods (
    channel      text        NOT NULL,
    facility     text        NOT NULL,
    period       text        NOT NULL,
    period_start date        NOT NULL,
    period_end   date        NOT NULL,
    dirty        boolean     NOT NULL DEFAULT true,
    last_event_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    late_events  integer     NOT NULL DEFAULT 0, -- events that came after it was first sent
    emitted_tx   bigint,
    emitted_at   timestamptz,
    emissions    integer     NOT NULL DEFAULT 0,
    last_body    text,
    PRIMARY KEY (channel, facility, period)
);
CREATE INDEX aggregate_periods_due ON aggregate_periods (channel, period_end) WHERE dirty;
