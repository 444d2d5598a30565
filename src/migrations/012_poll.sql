-- 012: polling channels (src/poller.c), shared by every hibus on the database.
--
-- poll_state: one row per poll channel. next_due is the next slot of its schedule;
-- a process takes a slot by moving next_due past now and setting claimed_by /
-- claimed_until in one transaction that read the row FOR UPDATE SKIP LOCKED, so
-- of several processes one pulls each slot, and a slot missed while every process
-- was down is pulled once (next_due is in the past once, not once per slot).
-- cursor advances only when every item of a pull is stored; last_error says why
-- the last pull failed (NULL after a success).
CREATE TABLE poll_state (
    channel       text        PRIMARY KEY,
    schedule      text        NOT NULL, -- "cron <expr>" or "every <n>ms": a change resets next_due
    next_due      timestamptz NOT NULL,
    cursor        text,                 -- NULL: the channel's poll.cursor.from
    claimed_by    text,                 -- the process pulling now (host:pid)
    claimed_until timestamptz,          -- its claim lapses then (it died)
    last_run      timestamptz,
    last_success  timestamptz,
    last_items    integer,
    last_error    text,
    last_error_at timestamptz,
    runs          bigint      NOT NULL DEFAULT 0,
    failures      bigint      NOT NULL DEFAULT 0
);

-- The ids (poll.item_id) of the items already made into transactions, so that an
-- item pulled again (the cursor did not move past it, or the source sends it
-- twice) makes no second transaction.
CREATE TABLE poll_items (
    channel        text        NOT NULL,
    item_id        text        NOT NULL,
    transaction_id bigint      NOT NULL,
    seen_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, item_id)
);
