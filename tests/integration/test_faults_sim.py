"""Issue 4, "Nothing is lost": DHIS2 misbehaves while reports are delivered.

Reports go to an async channel (202 at once), delivery workers take them to the DHIS2
simulator, and the simulator is down, stalls beyond the route timeout, drops
connections or answers 500. Every test then checks the books (harness.FaultTestCase
.account): the simulator holds exactly the reports' values, every 202 has its
transactions row ending successful with its attempts, and the imports the simulator
applied more than once are counted (one RELIABILITY line per test, docs/reliability.md).
Also: a correction posted while the original is being retried is not overwritten by
the original's retry.
"""

import copy
import unittest

import harness

PG = SIM = SIM_DOWN = HB = None
PATH = "/faults/stock"
PATH_DOWN = "/faults/down"


def setUpModule():
    global PG, SIM, SIM_DOWN, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    SIM_DOWN = harness.DHIS2Sim(name="dhis2-sim-down")
    SIM_DOWN.reserve_port()  # down from the start: the route points at a closed port
    HB = harness.fault_hibus(PG, [harness.fault_channel("faults", PATH, SIM),
                                  harness.fault_channel("faults-down", PATH_DOWN, SIM_DOWN)])
    HB.start()
    SimFaultsTest.PG = PG


def tearDownModule():
    harness.stop_all(HB, SIM, SIM_DOWN, PG)


class SimFaultsTest(harness.FaultTestCase):

    def tearDown(self):
        if SIM.running:
            SIM.clear_faults()

    def failed_attempts(self, posted):
        return PG.rows("SELECT transaction_id, attempt, status_code, error FROM attempts"
                       " WHERE transaction_id IN (%s) AND outcome IS DISTINCT FROM 'successful'"
                       " ORDER BY id" % ",".join(str(p.tx) for p in posted))

    def test_1_simulator_down(self):
        """DHIS2 is down when the reports arrive: hibus still answers 202 and keeps
        retrying; once DHIS2 is up (same address) everything is delivered."""
        self.begin(SIM_DOWN)
        self.assertFalse(SIM_DOWN.running)
        posted = self.post_all(HB, PATH_DOWN, harness.fault_reports(18, 2001, "down"))
        txs = [p.tx for p in posted]
        # every report tried at least twice against the closed port before it comes up
        harness.wait_until(
            lambda: PG.scalar("SELECT count(DISTINCT transaction_id) FROM attempts"
                              " WHERE transaction_id IN (%s) AND attempt >= 2"
                              % ",".join(map(str, txs))) == str(len(txs)),
            timeout=30, interval=0.2, what="two failed tries of every report")
        self.assertEqual(self.unfinished(txs), len(txs), "a report ended while DHIS2 was down")
        SIM_DOWN.start()
        self.wait_settled(txs)
        fig = self.account("simulator_down", posted, SIM_DOWN, faults=1, unapplied=0,
                           exact_duplicates=0)
        failed = self.failed_attempts(posted)
        self.assertEqual(len(failed), fig["failed_tries"])
        self.assertGreaterEqual(len(failed), 2 * len(txs))
        for a in failed:
            self.assertIsNone(a["status_code"], a)  # no answer: connection refused
            self.assertTrue(a["error"], a)

    def test_2_stall_beyond_timeout(self):
        """The first K imports stall 2 s, the route's timeout is 1 s: hibus gives up on
        them and retries. The simulator applies a stalled import anyway once its stall
        ends, so each of them is one duplicate (the same values written again)."""
        k = 6
        self.begin(SIM)
        SIM.faults(stall_seconds=2, stall_count=k)
        posted = self.post_all(HB, PATH, harness.fault_reports(24, 2002, "stall"))
        self.wait_settled([p.tx for p in posted])
        fig = self.account("stall", posted, SIM, faults=SIM.stats()["faults"], unapplied=0)
        self.assertEqual(fig["faults"], k)
        # every try hibus gave up on (timeout) was applied by the simulator all the same
        self.assertEqual(fig["failed_tries"], k)
        self.assertEqual(fig["duplicates"], fig["failed_tries"])
        for a in self.failed_attempts(posted):
            self.assertIsNone(a["status_code"], a)
            self.assertRegex(a["error"] or "", "(?i)time", a)

    def test_3_dropped_connections(self):
        """The first K imports are read, then their connection is closed without an
        answer: nothing was stored, hibus retries (libcurl may resend a request whose
        kept-alive connection closed at once: that is logged as an attempt too)."""
        k = 6
        self.begin(SIM)
        SIM.faults(drop_count=k)
        posted = self.post_all(HB, PATH, harness.fault_reports(24, 2003, "drop"))
        self.wait_settled([p.tx for p in posted])
        stats = SIM.stats()
        fig = self.account("drop", posted, SIM, faults=stats["faults"],
                           unapplied=stats["faults"], exact_duplicates=0)
        self.assertEqual(fig["faults"], k)
        self.assertEqual(fig["failed_tries"], k)

    def test_4_server_errors(self):
        """The first N imports are answered 500: retried until they succeed."""
        n = 10
        self.begin(SIM)
        SIM.faults(fail_status=500, fail_count=n)
        posted = self.post_all(HB, PATH, harness.fault_reports(24, 2004, "500"))
        self.wait_settled([p.tx for p in posted])
        stats = SIM.stats()
        fig = self.account("http_500", posted, SIM, faults=stats["faults"],
                           unapplied=stats["faults"], exact_duplicates=0)
        self.assertEqual(fig["faults"], n)
        self.assertEqual(fig["failed_tries"], n)
        codes = {a["status_code"] for a in self.failed_attempts(posted)}
        self.assertEqual(codes, {500})

    def test_5_correction_not_overwritten_by_retry(self):
        """A report, then its correction (same facility and period, another
        stock_on_hand), while DHIS2 fails the first tries: the correction waits for the
        original (same order key), so DHIS2 ends with the correction's values."""
        self.begin(SIM)
        SIM.faults(fail_status=500, fail_count=3)
        original = harness.fault_reports(1, 2005, "order")[0]
        correction = copy.deepcopy(original)
        correction["report_id"] += "-corrected"
        correction["lines"][0]["stock_on_hand"] += 7
        correction["lines"][0]["adjustments"] += 7
        p1 = self.post_report(HB, PATH, original)
        p2 = self.post_report(HB, PATH, correction)
        self.assertEqual((p1.status, p2.status), (202, 202), (p1.resp.body, p2.resp.body))
        self.assertLess(p1.tx, p2.tx)
        self.wait_settled([p1.tx, p2.tx])
        stats = SIM.stats()
        want = harness.report_values(correction)
        self.assertNotEqual(want, harness.report_values(original))
        self.account("ordering", [p1, p2], SIM, faults=stats["faults"],
                     unapplied=stats["faults"], expect_values=want, exact_duplicates=0)
        # the three failures all hit the original: the correction was not even tried
        # before the original was delivered
        a1 = PG.rows("SELECT attempt, status_code, started_at, duration_ms FROM attempts"
                     " WHERE transaction_id = %d ORDER BY id" % p1.tx)
        a2 = PG.rows("SELECT attempt, status_code, started_at FROM attempts"
                     " WHERE transaction_id = %d ORDER BY id" % p2.tx)
        self.assertEqual([a["status_code"] for a in a1], [500, 500, 500, 200], a1)
        self.assertEqual([a["status_code"] for a in a2], [200], a2)
        self.assertTrue(PG.scalar(
            "SELECT (SELECT min(started_at) FROM attempts WHERE transaction_id = %d) >="
            " (SELECT max(started_at + duration_ms * interval '1 ms') FROM attempts"
            "  WHERE transaction_id = %d)" % (p2.tx, p1.tx)) == "t",
            "the correction was sent before the original's last try ended: %r %r" % (a1, a2))
        # and the simulator applied the original first, then the correction: the two
        # changed values updated, the 14 others re-sent unchanged and so ignored
        # (DHIS2 2.38.6+), none of them a conflict
        applied = self.applied_imports(SIM)
        self.assertEqual([(a["imported"], a["updated"], a["ignored"]) for a in applied],
                         [(16, 0, 0), (0, 2, 14)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
