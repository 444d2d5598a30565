"""Retention: old bodies emptied, old transactions removed, whole old months dropped
as partitions, and nothing queued ever touched (hibus prune, the same code as the
retention thread of hibus serve, which is tested on its own schedule too)."""

import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(
        PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
        channels=[harness.channel("short", "/short", TARGET.url + "/s", keep_transactions="10d"),
                  harness.channel("long", "/long", TARGET.url + "/l")],
        settings={"retention": {"keep_bodies": "1d", "keep_transactions": "30d",
                                "prune_every": "1h"}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def age(tx, days):
    """Makes transaction tx days older. Moving a row to another month moves it to
    another partition, which must exist first; attempts follow their transaction's
    received_at."""
    PG.psql("SELECT hibus_ensure_partitions(clock_timestamp() - interval '%d days', 2)" % days)
    PG.psql("UPDATE attempts SET tx_received_at = tx_received_at - interval '%d days'"
            " WHERE transaction_id = %d" % (days, tx))
    PG.psql("UPDATE transactions SET received_at = received_at - interval '%d days'"
            " WHERE id = %d" % (days, tx))


class RetentionTest(harness.TestCase):

    def post(self, path):
        r = HB.request("POST", path, body=b'{"n": 1}', auth=AUTH,
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        return int(r.headers["x-hibus-transaction"])

    def age(self, tx, days):
        age(tx, days)

    def partitions(self):
        return {r[0] for r in PG.psql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'transactions'::regclass")}

    def test_prune(self):
        ancient = self.post("/long")      # 75 days: its whole month is past 30 days
        old = self.post("/long")          # 40 days: past 30 days, month not entirely
        short_old = self.post("/short")   # 15 days on a channel that keeps 10
        recent = self.post("/long")       # 2 days: body past 1 day, row kept
        fresh = self.post("/long")        # now
        queued = self.post("/long")       # 80 days, but still queued: never touched
        for tx, days in ((ancient, 75), (old, 40), (short_old, 15), (recent, 2), (queued, 80)):
            self.age(tx, days)
        PG.psql("UPDATE transactions SET status = 'queued', next_attempt_at = clock_timestamp()"
                " + interval '1 day' WHERE id = %d" % queued)
        month_of = lambda tx: PG.scalar(
            "SELECT tableoid::regclass::text FROM transactions WHERE id = %d" % tx)
        ancient_part = month_of(ancient)
        self.assertNotEqual(ancient_part, month_of(fresh))

        r = HB.cli("prune", "-c", HB.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"transactions removed [0-9]+; bodies emptied [0-9]+")

        left = {int(x[0]) for x in PG.psql("SELECT id FROM transactions")}
        self.assertEqual(left, {recent, fresh, queued})
        self.assertEqual(PG.count("attempts", "transaction_id IN (%d, %d, %d)"
                                  % (ancient, old, short_old)), 0)
        # the month of the ancient one went as a whole, unless the queued one
        # (still waiting) lives in it
        if ancient_part != month_of(queued):
            self.assertNotIn(ancient_part, self.partitions())
        # bodies past keep_bodies are gone, the row and its metadata stay
        row = PG.row("SELECT request_body IS NULL AS no_req, response_body IS NULL AS no_resp,"
                     " bodies_pruned_at IS NOT NULL AS pruned, status FROM transactions"
                     " WHERE id = %d" % recent)
        self.assertEqual(row, {"no_req": True, "no_resp": True, "pruned": True,
                               "status": "successful"})
        self.assertEqual(PG.scalar("SELECT response_excerpt IS NULL FROM attempts"
                                   " WHERE transaction_id = %d" % recent), "t")
        fresh_row = PG.row("SELECT request_body IS NOT NULL AS body, bodies_pruned_at FROM"
                           " transactions WHERE id = %d" % fresh)
        self.assertEqual(fresh_row, {"body": True, "bodies_pruned_at": None})
        queued_row = PG.row("SELECT status, request_body IS NOT NULL AS body FROM transactions"
                            " WHERE id = %d" % queued)
        self.assertEqual(queued_row, {"status": "queued", "body": True})
        # hibus tx says the bodies were removed
        out = HB.cli("tx", "-c", HB.config_path, str(recent))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("removed by retention", out.stdout)
        # a second prune finds nothing more to do
        r = HB.cli("prune", "-c", HB.config_path)
        self.assertIn("transactions removed 0; bodies emptied 0", r.stdout)


class RetentionThreadTest(harness.TestCase):

    def test_serve_prunes_on_its_schedule(self):
        # a second process on the same database, pruning every second
        hb = harness.Hibus(
            PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
            channels=[harness.channel("long", "/long", TARGET.url + "/l")],
            settings={"retention": {"keep_bodies": "1d", "keep_transactions": "30d",
                                    "prune_every": "1s"}}, name="pruner")
        hb.start()
        try:
            r = hb.request("POST", "/long", body=b'{"n": 2}', auth=AUTH,
                           headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.body)
            tx = int(r.headers["x-hibus-transaction"])
            age(tx, 2)
            harness.wait_until(
                lambda: PG.scalar("SELECT bodies_pruned_at IS NOT NULL FROM transactions"
                                  " WHERE id = %d" % tx) == "t",
                timeout=20, what="the retention thread to empty the body")
            # the thread logs what it did once the prune has committed
            harness.wait_until(lambda: "retention:" in hb.log_text(), timeout=10,
                               what="the retention thread's log line")
        finally:
            hb.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
