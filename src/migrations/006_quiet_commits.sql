-- 006: no NOTIFY inside a request's commit.
--
-- A transaction that sent NOTIFY holds PostgreSQL's cluster-wide notify lock from
-- its pre-commit until its commit record is flushed (src/backend/commands/async.c,
-- PreCommit_Notify), so no two such commits can share a WAL flush. With these
-- triggers every request's insert and every change of status notified, and
-- commits went one flush at a time. hibus now announces changes after they
-- commit, coalesced, from a connection of its own (src/txlog_notify.c); the
-- rare statements of short-lived commands (rerun) notify in their own SQL.
DROP TRIGGER transactions_notify_insert ON transactions;
DROP TRIGGER transactions_notify_status ON transactions;
DROP TRIGGER transactions_queue_insert ON transactions;
DROP TRIGGER transactions_queue_update ON transactions;
DROP FUNCTION hibus_tx_notify();
DROP FUNCTION hibus_queue_notify();
