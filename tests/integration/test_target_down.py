"""The target does not answer: nothing listens (502), or it is too slow (504)."""

import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None
DEAD_PORT = None


def setUpModule():
    global PG, TARGET, HB, DEAD_PORT
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    DEAD_PORT = harness.free_port()  # nothing listens there
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[
        harness.channel("lmis-down", "/lmis/down", "http://127.0.0.1:%d/stock" % DEAD_PORT),
        harness.channel("lmis-slow", "/lmis/slow", TARGET.url + "/slow/3", timeout="1s"),
    ])
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


class TargetDownTest(harness.TestCase):

    def stored(self, request_id):
        row = PG.row("SELECT id, status, response_status, error, finished_at IS NOT NULL AS"
                     " finished FROM transactions WHERE request_id = '%s'" % request_id)
        self.assertIsNotNone(row, "no transactions row for %s" % request_id)
        atts = PG.rows("SELECT route, attempt, url, status_code, error FROM attempts"
                       " WHERE transaction_id = %d ORDER BY id" % row["id"])
        return row, atts

    def test_nothing_listens_gives_502(self):
        r = HB.request("POST", "/lmis/down?x=1", body=b'{"a": 1}', auth=AUTH,
                       headers=dict(JSON, **{"X-Request-Id": "itest-down-502"}))
        err = self.assertJsonError(r, 502, "HIBUS_E_TARGET")
        self.assertEqual(err["request_id"], "itest-down-502")
        row, atts = self.stored("itest-down-502")
        if "x-hibus-transaction" in r.headers:
            self.assertEqual(r.headers["x-hibus-transaction"], str(row["id"]))
        self.assertEqual(row["status"], "failed")
        self.assertEqual(row["response_status"], 502)
        self.assertTrue(row["finished"])
        self.assertEqual(len(atts), 1, atts)
        self.assertEqual(atts[0]["route"], "archive")
        self.assertEqual(atts[0]["attempt"], 1)
        self.assertEqual(atts[0]["url"], "http://127.0.0.1:%d/stock?x=1" % DEAD_PORT)
        self.assertIsNone(atts[0]["status_code"])
        self.assertTrue(atts[0]["error"], "attempt without an error message")

    def test_slow_target_gives_504(self):
        before = len(TARGET.requests)
        t0 = time.monotonic()
        r = HB.request("POST", "/lmis/slow", body=b'{"a": 2}', auth=AUTH,
                       headers=dict(JSON, **{"X-Request-Id": "itest-down-504"}))
        elapsed = time.monotonic() - t0
        err = self.assertJsonError(r, 504, "HIBUS_E_TIMEOUT")
        self.assertEqual(err["request_id"], "itest-down-504")
        self.assertLess(elapsed, 2.8, "hibus waited %.1fs; the route timeout is 1s" % elapsed)
        self.assertGreaterEqual(elapsed, 0.9, "answered after %.2fs, before the timeout" % elapsed)
        self.assertEqual(len(TARGET.requests) - before, 1, "the target never got the request")
        row, atts = self.stored("itest-down-504")
        self.assertEqual(row["status"], "failed")
        self.assertEqual(row["response_status"], 504)
        self.assertEqual(len(atts), 1, atts)
        self.assertIsNone(atts[0]["status_code"])
        self.assertRegex(atts[0]["error"] or "", r"(?i)time(d)?[ -]?out",
                         "attempt error does not mention the timeout")


if __name__ == "__main__":
    unittest.main(verbosity=2)
