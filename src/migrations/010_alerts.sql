-- 010: the state of alerts (src/alerts.c), shared by every hibus on the database.
--
-- One row per channel and kind of alert: whether it is firing, since when, and when
-- its last notice went out. Kept here rather than in a process, so that two nodes
-- send one notice between them, and a restart neither repeats a notice nor forgets
-- to send the recovery.
CREATE TABLE alert_state (
    channel   text        NOT NULL,
    kind      text        NOT NULL CHECK (kind IN ('failure_rate', 'conflicts', 'queue_age')),
    firing    boolean     NOT NULL DEFAULT false,
    since     timestamptz,
    last_sent timestamptz,
    value     double precision,
    PRIMARY KEY (channel, kind)
);
