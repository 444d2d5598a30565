"""Issue 4, "Nothing is lost": PostgreSQL stops and comes back while reports arrive on
an async channel.

A 202 is given only once the report's row is committed. While the database is away,
clients get 503 (a JSON error with Retry-After) and nothing is stored for them; every
report that got a 202, before or after, is delivered once the database is back.
The simulator takes 0.2 s per import, so deliveries are under way when the database
stops: their outcome cannot be recorded, and they are sent again (duplicates).
"""

import threading
import time
import unittest

import harness

PG = SIM = HB = None
PATH = "/faults/stock"


def setUpModule():
    global PG, SIM, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    HB = harness.fault_hibus(PG, [harness.fault_channel("faults", PATH, SIM)])
    HB.settings["database"] = {"connect_timeout": "2s", "pool": 4}
    HB.start()
    DbFaultsTest.PG = PG


def tearDownModule():
    harness.stop_all(HB, SIM, PG)


class DbFaultsTest(harness.FaultTestCase):

    def test_postgres_down_and_back(self):
        self.begin(SIM)
        # imports take a while, so that deliveries are under way when the database stops
        # (their outcome cannot be written: the lease lapses, they are sent again)
        SIM.faults(stall_seconds=0.2, stall_count=-1)
        pool = harness.fault_reports(400, 1990, "pg")
        lock = threading.Lock()
        posted, errors = [], []
        stop = threading.Event()

        def poster():
            for rep in pool:
                if stop.is_set():
                    return
                try:
                    p = self.post_report(HB, PATH, rep, timeout=20)
                except Exception as e:  # noqa: BLE001 - asserted on below
                    with lock:
                        errors.append((rep["report_id"], repr(e)))
                    continue
                with lock:
                    posted.append(p)
                time.sleep(0.02)

        def count(status):
            with lock:
                return sum(1 for p in posted if p.status == status)

        th = threading.Thread(target=poster, daemon=True, name="poster")
        th.start()
        try:
            harness.wait_until(lambda: count(202) >= 10, timeout=30, what="10 reports accepted")
            with lock:
                down_from = len(posted)  # no 503 before the database goes down
            PG.stop()
            harness.wait_until(lambda: count(503) >= 5, timeout=30,
                               what="503s while the database is down")
            rd = HB.request("GET", "/ready")
            self.assertEqual(rd.status, 503, rd.body)
            PG.start()
            harness.wait_until(lambda: HB.request("GET", "/ready").status == 200, timeout=30,
                               what="/ready after the database came back")
            back = count(202)
            harness.wait_until(lambda: count(202) >= back + 10, timeout=30,
                               what="10 reports accepted after the database came back")
        finally:
            stop.set()
            th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(errors, [], "requests without an HTTP answer")
        statuses = {p.status for p in posted}
        self.assertEqual(statuses, {202, 503}, statuses)
        refused = [p for p in posted if p.status == 503]
        accepted = [p for p in posted if p.status == 202]
        for p in refused:
            body = self.assertJsonError(p.resp, 503, "HIBUS_E_DB")
            self.assertEqual(body["request_id"], p.request_id)
            self.assertRegex(p.resp.headers.get("retry-after", ""), r"^[1-9][0-9]*$",
                             "503 without a Retry-After of seconds")
            self.assertNotIn("x-hibus-transaction", p.resp.headers)
        self.assertTrue(all(i >= down_from for i, p in enumerate(posted) if p.status == 503))

        self.wait_settled([p.tx for p in accepted])
        SIM.clear_faults()
        fig = self.account("postgres_down", posted, SIM, faults=1, unapplied=0)
        print("  %d reports posted: %d accepted (202), %d refused (503)"
              % (len(posted), len(accepted), len(refused)))
        # no row for a 503, and none besides the 202s
        rids = ",".join("'%s'" % p.request_id for p in refused)
        self.assertEqual(PG.count("transactions", "request_id IN (%s)" % rids), 0,
                         "a request answered 503 was stored")
        self.assertEqual(PG.count("transactions"), len(accepted))
        self.assertEqual(fig["delivered"], len(accepted))


if __name__ == "__main__":
    unittest.main(verbosity=2)
