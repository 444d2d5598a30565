"""Issue 4, "Nothing is lost": transactions that failed for good (max_attempts
reached while DHIS2 was broken) are put back with `hibus rerun` once DHIS2 is fixed.

Their history stays: the attempts of both periods are in the attempts table, numbered
on from where the first period ended. `hibus rerun --cancel` drops reruns that are
still queued (spread out by --rate): they end failed, and DHIS2 never sees them.
"""

import copy
import re
import unittest

import harness

PG = SIM = HB = None
RETRY = {"max_attempts": 2}
CANCEL_ERROR = "rerun cancelled before it was delivered (hibus rerun --cancel)"


def setUpModule():
    global PG, SIM, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    HB = harness.fault_hibus(PG, [
        harness.fault_channel("faults-rerun", "/faults/rerun", SIM, retry=RETRY),
        harness.fault_channel("faults-cancel", "/faults/cancel", SIM, retry=RETRY)])
    HB.start()
    RerunFaultsTest.PG = PG


def tearDownModule():
    harness.stop_all(HB, SIM, PG)


class RerunFaultsTest(harness.FaultTestCase):

    def tearDown(self):
        SIM.clear_faults()

    def fail_for_good(self, path, reports):
        """Posts reports while DHIS2 fails every import; waits until each one has
        failed for good (2 rounds, retry.max_attempts) and fixes DHIS2."""
        SIM.faults(fail_status=500, fail_count=-1)
        posted = self.post_all(HB, path, reports)
        txs = [p.tx for p in posted]
        self.wait_settled(txs, what="the reports to fail")
        rows = PG.rows("SELECT id, status, error, rounds FROM transactions WHERE id IN (%s)"
                       % ",".join(map(str, txs)))
        self.assertEqual(len(rows), len(txs))
        for r in rows:
            self.assertEqual((r["status"], r["rounds"]), ("failed", 2), r)
            self.assertIn("max_attempts", r["error"] or "", r)
        self.assertEqual(PG.count("attempts", "transaction_id IN (%s)" % ",".join(map(str, txs))),
                         2 * len(txs))
        self.assertEqual(SIM.values(), [])
        SIM.clear_faults()
        return posted

    def rerun(self, *args):
        r = HB.cli("rerun", "-c", HB.config_path, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_0_rate_must_be_a_positive_number(self):
        for rate in ("nan", "inf", "-inf", "0", "-2", "", "3x"):
            r = HB.cli("rerun", "-c", HB.config_path, "--channel", "faults-rerun", "--rate", rate)
            self.assertEqual(r.returncode, 2, (rate, r.stdout, r.stderr))
            self.assertIn("--rate expects a positive number", r.stderr)

    def test_1_rerun_after_fix(self):
        self.begin(SIM)
        n = 20
        posted = self.fail_for_good("/faults/rerun", harness.fault_reports(n, 2006, "rerun"))
        txs = [p.tx for p in posted]
        out = self.rerun("--channel", "faults-rerun", "--status", "failed", "--rate", "50")
        self.assertRegex(out, r"^re-queued %d transactions, 50 a second" % n)
        self.wait_settled(txs)
        stats = SIM.stats()
        fig = self.account("rerun", posted, SIM, faults=stats["faults"],
                           unapplied=stats["faults"], exact_duplicates=0)
        self.assertEqual(fig["faults"], 2 * n)
        # the history of both periods: two 500s, then the rerun's success, numbered on
        for p in posted:
            a = PG.rows("SELECT attempt, status_code, outcome FROM attempts"
                        " WHERE transaction_id = %d ORDER BY id" % p.tx)
            self.assertEqual([(x["attempt"], x["status_code"]) for x in a],
                             [(1, 500), (2, 500), (3, 200)], a)
        row = PG.row("SELECT count(*) AS n, count(rerun_at) AS reruns, count(error) AS errors"
                     " FROM transactions WHERE id IN (%s)" % ",".join(map(str, txs)))
        self.assertEqual(row, {"n": n, "reruns": n, "errors": 0})

    def test_2_rerun_cancel(self):
        self.begin(SIM)
        n = 12
        posted = self.fail_for_good("/faults/cancel", harness.fault_reports(n, 2008, "cancel"))
        txs = [p.tx for p in posted]
        # one a second: the first is due at once, the last in 11 s
        out = self.rerun("--channel", "faults-cancel", "--status", "failed", "--rate", "1")
        self.assertRegex(out, r"^re-queued %d transactions" % n)
        out = self.rerun("--cancel", "--channel", "faults-cancel")
        m = re.match(r"^cancelled (\d+) queued reruns?\n$", out)
        self.assertIsNotNone(m, out)
        k = int(m.group(1))
        self.wait_settled(txs)
        rows = {r["id"]: r for r in PG.rows(
            "SELECT id, status, error FROM transactions WHERE id IN (%s)"
            % ",".join(map(str, txs)))}
        cancelled = [p for p in posted if rows[p.tx]["error"] == CANCEL_ERROR]
        delivered = [p for p in posted if p not in cancelled]
        self.assertEqual(len(cancelled), k, rows)
        self.assertGreaterEqual(k, n - 4, "most reruns should still have been queued")
        for p in cancelled:
            self.assertEqual(rows[p.tx]["status"], "failed", rows[p.tx])
            # no try after the cancel: the two of the first period only
            a = PG.rows("SELECT attempt, status_code FROM attempts WHERE transaction_id = %d"
                        " ORDER BY id" % p.tx)
            self.assertEqual([(x["attempt"], x["status_code"]) for x in a],
                             [(1, 500), (2, 500)], a)
        stats = SIM.stats()
        # the simulator holds exactly the values of the reruns delivered before the
        # cancel and applied nothing else (account checks it): the cancelled ones were
        # never sent
        fig = self.account("rerun_cancel", delivered, SIM, faults=stats["faults"],
                           unapplied=stats["faults"], exact_duplicates=0, cancelled=cancelled)
        self.assertEqual(fig["imports"], 2 * n + len(delivered))

    def test_3_rerun_does_not_overwrite_a_later_correction(self):
        """A report fails for good while DHIS2 is broken; once DHIS2 is fixed the
        facility sends a correction (same facility and period), which is delivered. A
        bulk rerun of the failed transactions must not put the original's stale values
        back over the correction: the original's rerun is the original's retry, and the
        promise of order keys is that it never overwrites a later correction."""
        self.begin(SIM)
        original = harness.fault_reports(1, 2009, "supersede")[0]
        [p1] = self.fail_for_good("/faults/rerun", [original])
        correction = copy.deepcopy(original)
        correction["report_id"] += "-corrected"
        correction["lines"][0]["stock_on_hand"] += 7
        correction["lines"][0]["adjustments"] += 7
        p2 = self.post_report(HB, "/faults/rerun", correction)
        self.assertEqual(p2.status, 202, p2.resp.body)
        self.wait_settled([p2.tx])
        want = harness.report_values(correction)
        self.assertEqual(harness.normalize_values(SIM.values()), want)
        self.rerun("--channel", "faults-rerun", "--status", "failed", "--since",
                   PG.scalar("SELECT received_at FROM transactions WHERE id = %d" % p1.tx))
        self.wait_settled([p1.tx])
        got = harness.normalize_values(SIM.values())
        stale = [v for v in got if v not in want]
        self.assertEqual(stale, [], "the rerun of transaction %d (the original) overwrote the"
                                    " correction %d already delivered" % (p1.tx, p2.tx))


if __name__ == "__main__":
    unittest.main(verbosity=2)
