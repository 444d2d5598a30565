"""Issue 4, "Nothing is lost": hibus itself dies (kill -9) in the middle of a delivery
burst.

The simulator stalls every import a little, so that deliveries are in flight when the
process is killed: their transactions stay `processing` under a lease of the dead
process. Once the lease (3 s) lapses, a hibus claims them again: the same process
restarted (same port, configuration and database), or a second node on the same
database. Imports that were in flight at the kill are applied by the simulator and sent
again: duplicates, counted (docs/reliability.md), never losses.
"""

import copy
import os
import re
import signal
import time
import unittest

import harness

PG = SIM = None
PATH = "/faults/stock"
STALL = 0.4


def setUpModule():
    global PG, SIM
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    KillFaultsTest.PG = PG


def tearDownModule():
    harness.stop_all(SIM, PG)


class KillFaultsTest(harness.FaultTestCase):

    def new_hibus(self, name="hibus", timeout="1s"):
        hb = harness.fault_hibus(PG, [harness.fault_channel("faults", PATH, SIM, timeout=timeout)],
                                 name=name)
        self.addCleanup(hb._cleanup)
        return hb

    def tearDown(self):
        SIM.clear_faults()

    def held_by(self, hb_pid, txs):
        """The transactions of txs that a process with this pid holds a lease on (its
        listener holds them as host:pid, its delivery workers as host:pid/wN)."""
        return [int(r[0]) for r in PG.psql(
            "SELECT id FROM transactions WHERE id IN (%s) AND status = 'processing'"
            " AND (lease_owner LIKE '%%:%d' OR lease_owner LIKE '%%:%d/w%%')"
            % (",".join(map(str, txs)), hb_pid, hb_pid))]

    def test_1_kill9_and_restart(self):
        """kill -9 while deliveries are in flight, then the same hibus again (same port,
        configuration and database): every report is delivered."""
        hb = self.new_hibus().start()
        self.begin(SIM)
        SIM.faults(stall_seconds=STALL, stall_count=-1)
        n = 40
        posted = self.post_all(hb, PATH, harness.fault_reports(n, 2011, "kill"))
        txs = [p.tx for p in posted]
        self.wait_imports(SIM, n // 3)
        pid = hb.proc.pid
        self.assertEqual(hb.kill9(), -9)
        at_kill = SIM.stats()["imports"]
        held = self.held_by(pid, txs)
        left = self.unfinished(txs)
        self.assertTrue(held, "no delivery was in flight at the kill")
        self.assertGreater(left, len(held), "the burst was over before the kill")
        port = hb.port
        hb.restart()
        self.assertEqual(hb.port, port)
        self.wait_settled(txs)
        SIM.clear_faults()
        fig = self.account("kill9_restart", posted, SIM, faults=1, unapplied=0)
        print("  killed after %d imports with %d deliveries in flight and %d reports left"
              % (at_kill, len(held), left))
        # a duplicate is a delivery that was in flight when the process died
        self.assertLessEqual(fig["duplicates"], len(held))
        # the rounds cut short by the kill were counted when claimed, their attempts never
        # written: the log shows them as rounds without attempts
        self.assertEqual(fig["rounds"] - fig["tries"], len(held))
        hb.stop()

    def test_2_two_nodes_one_killed(self):
        """Two hibus processes on one database take reports; one is killed mid-way: the
        other delivers everything, the dead one's claims included once their leases
        lapse."""
        a = self.new_hibus("hibus-a").start()
        b = a.clone("hibus-b")  # same configuration, same database, another port
        self.addCleanup(b._cleanup)
        b.start()
        self.assertNotEqual(a.port, b.port)
        self.begin(SIM)
        SIM.faults(stall_seconds=STALL, stall_count=-1)
        n = 48
        reports = harness.fault_reports(n, 2015, "2nodes")
        posted = []
        for i, rep in enumerate(reports):
            posted += self.post_all(a if i % 2 == 0 else b, PATH, [rep])
        txs = [p.tx for p in posted]
        self.wait_imports(SIM, n // 3)
        pid_a, pid_b = a.proc.pid, b.proc.pid
        self.assertEqual(a.kill9(), -9)
        held = self.held_by(pid_a, txs)
        left = self.unfinished(txs)
        self.assertTrue(held, "node a had no delivery in flight at the kill")
        self.assertGreater(left, len(held), "the burst was over before the kill")
        self.wait_settled(txs)
        SIM.clear_faults()
        fig = self.account("two_nodes_kill9", posted, SIM, faults=1, unapplied=0)
        print("  node a killed with %d deliveries in flight and %d reports left"
              % (len(held), left))
        self.assertLessEqual(fig["duplicates"], len(held))
        self.assertEqual(fig["rounds"] - fig["tries"], len(held))
        # both nodes took requests, and no lease is left behind
        workers = PG.rows("SELECT lease_owner, node FROM transactions WHERE id IN (%s)"
                          % ",".join(map(str, txs)))
        self.assertTrue(all(w["lease_owner"] is None for w in workers), workers)
        took = {w["node"].rsplit(":", 1)[1] for w in workers}
        self.assertEqual(took, {str(pid_a), str(pid_b)})
        b.stop()

    def test_3_frozen_batch_is_taken_over(self):
        """A worker holds a batch, one delivery in flight and one waiting, and its process
        is frozen (SIGSTOP: a paused VM, a swap storm): nothing renews its leases, they
        lapse, and another node delivers both and the correction queued behind the second
        (same order key). When the frozen process resumes, it must not send its stale
        copy of the second over the correction: each transaction of a batch is checked
        against its lease before its turn.

        Nodes: "intake" takes the reports (workers: 0); "a" (1 worker) claims one, then
        two at once (its claims double while they come back full); "b" (2 workers) starts
        once a is frozen. Each import takes 0.9 s; the lease is 3 s."""
        intake = self.new_hibus("intake")
        intake.settings["delivery"]["workers"] = 0
        intake.start()
        self.begin(SIM)
        reports = harness.fault_reports(3, 2019, "batch")
        correction = copy.deepcopy(reports[-1])
        correction["report_id"] += "-corrected"
        correction["lines"][0]["stock_on_hand"] += 7
        correction["lines"][0]["adjustments"] += 7
        posted = self.post_all(intake, PATH, reports + [correction])
        txs = [p.tx for p in posted]
        SIM.faults(stall_seconds=0.9, stall_count=-1)
        a = self.new_hibus("hibus-a")
        a.settings["delivery"].update(workers=1, batch=8)
        a.start()
        harness.wait_until(lambda: len(self.held_by(a.proc.pid, txs)) == 2, timeout=15,
                           what="node a to claim the second and third reports in one batch")
        time.sleep(0.3)  # the second's import is on its way (the simulator stalls it)
        os.kill(a.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: a.proc is not None and a.proc.poll() is None
                        and os.kill(a.proc.pid, signal.SIGCONT))
        b = self.new_hibus("hibus-b")
        b.settings["delivery"]["workers"] = 2
        b.start()
        self.wait_settled(txs)
        os.kill(a.proc.pid, signal.SIGCONT)
        time.sleep(2.5)  # a's worker goes on with its batch: the third's turn comes
        SIM.clear_faults()
        try:
            # the simulator must end with the correction's values (and every other report's)
            self.account("batch_lease_lapse", posted, SIM, faults=1, unapplied=0,
                         expect_values=harness.sort_values(
                             [v for r in reports[:-1] + [correction]
                              for v in harness.report_values(r)]))
            self.assertIn("claim lapsed before its turn in the batch", a.log_text())
        finally:
            for h in (b, a, intake):
                h.stop()

    def test_4_long_batch_keeps_its_claims(self):
        """A batch that takes longer than the lease keeps its claims while its process
        lives: the workers' leases are renewed every third of it. Node a (1 worker) takes
        7 reports whose imports take 1.5 s each: one, then two, then the last four in one
        claim, whose last turn comes 4.5 s after it, past the 3 s lease. Node b (2
        workers, idle: nothing else is queued) starts once a holds those four and would
        claim any that lapsed. None does: a delivers all seven, nothing is sent twice."""
        intake = self.new_hibus("intake", timeout="2s")  # an import takes 1.5 s
        intake.settings["delivery"]["workers"] = 0
        intake.start()
        self.begin(SIM)
        posted = self.post_all(intake, PATH, harness.fault_reports(7, 2021, "longbatch"))
        txs = [p.tx for p in posted]
        SIM.faults(stall_seconds=1.5, stall_count=-1)
        a = self.new_hibus("hibus-a", timeout="2s")
        a.settings["delivery"].update(workers=1, batch=8)
        a.start()
        harness.wait_until(lambda: len(self.held_by(a.proc.pid, txs)) == 4, timeout=20,
                           what="node a to claim the last four reports at once")
        b = self.new_hibus("hibus-b", timeout="2s")
        b.settings["delivery"]["workers"] = 2
        b.settings["log"] = {"level": "debug"}  # its claims are logged
        b.start()
        self.wait_settled(txs)
        SIM.clear_faults()
        try:
            fig = self.account("long_batch", posted, SIM, faults=0, unapplied=0)
            self.assertEqual(fig["duplicates"], 0)
            self.assertNotIn("claim lapsed", a.log_text())
            self.assertNotIn(" claimed ", b.log_text())  # b never had anything to take
        finally:
            for h in (b, a, intake):
                h.stop()

if __name__ == "__main__":
    unittest.main(verbosity=2)
