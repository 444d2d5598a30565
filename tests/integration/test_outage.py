"""Issue 13: ride out a DHIS2 outage, and recover from a crash in seconds.

Timings are scaled down (the shipped policy is 2 s .. 5 min of backoff for 24 h; here
100 ms .. 4 s for 1 h), the shapes are the same:

- test_1: DHIS2 is down for 25 s, longer than the old count-bounded policy lasted
  (max_attempts 12 with these backoffs ends after about 15 s on average). A channel
  with the new default (no count, max_age decides) delivers every report once DHIS2 is
  back, nothing `failed`; a channel that keeps the old max_attempts 12 loses reports to
  `failed`, for comparison. Once DHIS2 answers, the first success calls the other
  waiting retries forward: the backlog is delivered well within backoff.max.
- test_2: kill -9 of a process with deliveries in flight: a second process on the same
  database takes the claims over as soon as the short lease (3 s, renewed while a
  delivery runs) lapses, not after minutes.
- test_3/test_4: the same for a sync request, delivered by the listener while its
  client waits: an import slower than the lease keeps its claim (no worker of any
  process delivers it a second time), and after a kill -9 another process delivers it
  within a lease.
"""

import threading
import time
import unittest

import harness

PG = SIM = SIM_OLD = None
PATH_NEW = "/outage/new"
PATH_OLD = "/outage/old"
BACKOFF = {"initial": "100ms", "max": "4s"}
OUTAGE_S = 25


def setUpModule():
    global PG, SIM, SIM_OLD
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim(name="dhis2-sim-outage").start()
    SIM_OLD = harness.DHIS2Sim(name="dhis2-sim-old-policy").start()  # its own books
    OutageTest.PG = KillTakeoverTest.PG = SyncLeaseTest.PG = PG


def tearDownModule():
    harness.stop_all(SIM, SIM_OLD, PG)


class OutageTest(harness.FaultTestCase):

    def test_1_outage_longer_than_the_old_policy(self):
        new = harness.fault_channel("outage-new", PATH_NEW, SIM,
                                    retry={"max_age": "1h", "backoff": BACKOFF})
        old = harness.fault_channel("outage-old", PATH_OLD, SIM_OLD,
                                    retry={"max_attempts": 12, "max_age": "1h",
                                           "backoff": BACKOFF})
        hb = harness.fault_hibus(PG, [new, old], name="hibus-outage",
                                 delivery={"max_attempts": 0})
        self.addCleanup(hb._cleanup)
        hb.start()
        # hibus check warns about the old policy, with what it costs
        r = hb.cli("check", "-c", hb.config_path)
        self.assertIn("retry.max_attempts 12 ends the retries after about", r.stderr)
        self.assertIn("Remove it (max_age alone then decides)", r.stderr)

        self.begin(SIM)
        SIM.stop()  # DHIS2 goes down; the routes keep its address
        SIM_OLD.stop()
        down_at = time.monotonic()
        posted_new = self.post_all(hb, PATH_NEW, harness.fault_reports(12, 2001, "outage-new"))
        posted_old = self.post_all(hb, PATH_OLD, harness.fault_reports(12, 2003, "outage-old"))
        txs_new = [p.tx for p in posted_new]
        txs_old = [p.tx for p in posted_old]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        self.assertEqual(self.unfinished(txs_new), len(txs_new),
                         "a report of the new policy ended while DHIS2 was down")
        failed_old_during = self.PG.count(
            "transactions", "id IN (%s) AND status = 'failed'" % ",".join(map(str, txs_old)))
        SIM.start()  # the same port
        SIM_OLD.start()
        back_at = time.monotonic()
        self.wait_settled(txs_new, timeout=60)
        drained_s = time.monotonic() - back_at
        self.wait_settled(txs_old, timeout=60)
        self.account("outage_%ds" % OUTAGE_S, posted_new, SIM, faults=1, unapplied=0)
        rounds = [int(r["rounds"]) for r in self.PG.rows(
            "SELECT rounds FROM transactions WHERE id IN (%s)" % ",".join(map(str, txs_new)))]
        failed_old = self.PG.count(
            "transactions", "id IN (%s) AND status = 'failed'" % ",".join(map(str, txs_old)))
        print("  OUTAGE %d s: new policy %d/%d delivered, none failed, rounds %d..%d, backlog "
              "drained %.1f s after DHIS2 came back (backoff.max 4 s); old policy "
              "(max_attempts 12) %d/%d failed (%d before DHIS2 came back)"
              % (OUTAGE_S, len(txs_new) - self.unfinished(txs_new), len(txs_new), min(rounds),
                 max(rounds), drained_s, failed_old, len(txs_old), failed_old_during))
        self.assertEqual(self.PG.count("transactions", "id IN (%s) AND status = 'failed'"
                                       % ",".join(map(str, txs_new))), 0)
        self.assertGreaterEqual(min(rounds), 2, "a report was not retried during the outage")
        # the retries were called forward: not one waited out a backoff of up to 4 s
        # after the first success (without it the backlog takes about that long)
        self.assertLess(drained_s, 3.0)
        self.assertIn("called forward", hb.log_text())
        # the old count-bounded policy gave reports up within the outage
        self.assertGreater(failed_old, 0)
        hb.stop()


class KillTakeoverTest(harness.FaultTestCase):

    def test_2_kill9_takeover_within_the_short_lease(self):
        a = harness.fault_hibus(PG, [harness.fault_channel("outage-kill", "/outage/kill", SIM,
                                                            timeout="10s")],
                                name="hibus-a", delivery={"lease": "3s", "max_attempts": 0})
        self.addCleanup(a._cleanup)
        a.start()
        b = a.clone("hibus-b")
        self.addCleanup(b._cleanup)
        b.start()
        self.begin(SIM)
        # every import hangs 6 s: longer than the lease, so the claims are held by
        # the keeper's renewals, not by the lease alone
        SIM.faults(stall_seconds=6, stall_count=-1)
        posted = self.post_all(a, "/outage/kill", harness.fault_reports(4, 2010, "kill"))
        txs = [p.tx for p in posted]
        ids = ",".join(map(str, txs))
        pid_a = a.proc.pid
        owned_by_a = ("id IN (%s) AND status = 'processing' AND lease_owner LIKE '%%:%d/w%%'"
                      % (ids, pid_a))
        harness.wait_until(lambda: self.PG.count("transactions", owned_by_a) > 0, timeout=10,
                           what="node a to be delivering")
        time.sleep(4)  # past a whole lease: only the renewals keep a's claims
        held = [int(r[0]) for r in self.PG.psql("SELECT id FROM transactions WHERE "
                                                  + owned_by_a)]
        self.assertTrue(held, "node a lost its claims while alive (no renewal?)")
        self.assertEqual(a.kill9(), -9)
        killed_at = time.monotonic()
        SIM.clear_faults()
        held_ids = ",".join(map(str, held))
        harness.wait_until(
            lambda: self.PG.count("transactions", "id IN (%s) AND (lease_owner IS NULL OR "
                                  "lease_owner NOT LIKE '%%:%d%%')" % (held_ids, pid_a))
            == len(held), timeout=20, interval=0.05, what="node b to take the claims over")
        took_s = time.monotonic() - killed_at
        self.wait_settled(txs)
        print("  KILL9 %d claims in flight at the kill, taken over by node b %.1f s after it "
              "(lease 3 s)" % (len(held), took_s))
        self.assertLess(took_s, 3.0 + 1.5)  # the lease, and the workers' next look
        self.account("kill9_short_lease", posted, SIM, faults=1, unapplied=0)
        b.stop()


def sync_channel(name, path):
    d = harness.fault_channel(name, path, SIM, timeout="10s")
    d["mode"] = "sync"
    return d


class SyncLeaseTest(harness.FaultTestCase):

    def post_in_background(self, hb, path, rep):
        out = {}

        def run():
            try:
                out["posted"] = self.post_report(hb, path, rep, timeout=30)
            except Exception as e:  # the connection of a killed process
                out["error"] = e
        t = threading.Thread(target=run)
        t.start()
        return t, out

    def test_3_sync_import_slower_than_the_lease_keeps_its_claim(self):
        # the process that takes the request has no delivery workers of its own;
        # another process's workers would take the request over if its lease lapsed
        hb = harness.fault_hibus(PG, [sync_channel("outage-sync", "/outage/sync")],
                                 name="hibus-sync", delivery={"lease": "3s", "workers": 0})
        self.addCleanup(hb._cleanup)
        hb.start()
        other = harness.fault_hibus(PG, [sync_channel("outage-sync", "/outage/sync")],
                                    name="hibus-sync-other", delivery={"lease": "3s"})
        self.addCleanup(other._cleanup)
        other.start()
        self.begin(SIM)
        SIM.faults(stall_seconds=6, stall_count=1)
        rep = harness.fault_reports(1, 2020, "sync-slow")[0]
        t0 = time.monotonic()
        thread, out = self.post_in_background(hb, "/outage/sync", rep)
        self.wait_imports(SIM, 1, timeout=10)
        time.sleep(4.5)  # a lease and a half: only the renewals keep the claim
        row = self.PG.rows("SELECT status, lease_owner FROM transactions WHERE channel = "
                           "'outage-sync'")
        self.assertEqual(len(row), 1, row)
        self.assertEqual(row[0]["status"], "processing", row)
        self.assertNotIn("/w", row[0]["lease_owner"], "a delivery worker took the sync "
                         "request over while the listener was delivering it")
        thread.join(30)
        took = time.monotonic() - t0
        posted = out["posted"]
        self.assertEqual(posted.status, 200, posted.resp.body[:500])
        self.assertGreaterEqual(took, 6.0)
        tx = int(posted.resp.headers["x-hibus-transaction"])
        # one import: no second delivery while the first one ran
        self.assertEqual(SIM.stats()["imports"], 1)
        self.assertEqual(len(self.applied_imports(SIM)), 1)
        self.assertEqual(self.PG.count("transactions", "id = %d AND status = 'successful'" % tx),
                         1)
        self.assertEqual(self.PG.count("attempts", "transaction_id = %d" % tx), 1)
        print("  SYNC a 6 s import under a 3 s lease: answered 200 after %.1f s, 1 import, "
              "1 attempt" % took)
        other.stop()
        hb.stop()

    def test_4_sync_request_of_a_killed_process_is_delivered_within_a_lease(self):
        a = harness.fault_hibus(PG, [sync_channel("outage-sync-kill", "/outage/sync-kill")],
                                name="hibus-sync-a", delivery={"lease": "3s"})
        self.addCleanup(a._cleanup)
        a.start()
        b = a.clone("hibus-sync-b")
        self.addCleanup(b._cleanup)
        b.start()
        self.begin(SIM)
        SIM.faults(stall_seconds=6, stall_count=1)
        rep = harness.fault_reports(1, 2021, "sync-kill")[0]
        thread, out = self.post_in_background(a, "/outage/sync-kill", rep)
        self.wait_imports(SIM, 1, timeout=10)
        rows = self.PG.rows("SELECT id, lease_owner FROM transactions WHERE channel = "
                            "'outage-sync-kill' AND status = 'processing'")
        self.assertEqual(len(rows), 1, rows)
        tx = int(rows[0]["id"])
        pid_a = a.proc.pid
        self.assertEqual(rows[0]["lease_owner"].split(":")[-1], str(pid_a), rows)
        self.assertEqual(a.kill9(), -9)
        killed_at = time.monotonic()
        # taken over: no longer a's (b's worker claimed it, or already delivered it)
        harness.wait_until(
            lambda: self.PG.count("transactions", "id = %d AND (lease_owner IS NULL OR "
                                  "lease_owner NOT LIKE '%%:%d')" % (tx, pid_a)) == 1,
            timeout=20, interval=0.05, what="node b to take the sync request over")
        took_s = time.monotonic() - killed_at
        harness.wait_until(
            lambda: self.PG.count("transactions", "id = %d AND status = 'successful'" % tx) == 1,
            timeout=20, interval=0.05, what="node b to deliver the sync request")
        done_s = time.monotonic() - killed_at
        thread.join(30)
        self.assertNotIn("posted", out, "the killed process answered")
        print("  SYNC KILL9 the sync request of the killed process taken over by node b "
              "%.1f s after the kill, delivered after %.1f s (lease 3 s)" % (took_s, done_s))
        # the lease (3 s from the keeper's last renewal, which runs every second), the
        # workers' next look (delivery.poll 500 ms); before the keeper renewed sync
        # leases they lasted route timeouts + 30 s: 40 s here
        self.assertLess(took_s, 3.0 + 2.0)
        b.stop()


if __name__ == "__main__":
    unittest.main()
