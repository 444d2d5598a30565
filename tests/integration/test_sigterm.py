"""SIGTERM: hibus stops accepting, finishes what is in flight, exits 0."""

import signal
import socket
import threading
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)

PG = TARGET = None


def setUpModule():
    global PG, TARGET
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()


def tearDownModule():
    harness.stop_all(TARGET, PG)


def connect_refused(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return True
    finally:
        s.close()
    return False


class SigtermTest(harness.TestCase):

    def new_hibus(self):
        hb = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                           channels=[harness.channel("lmis-slow", "/lmis/slow",
                                                     TARGET.url + "/slow/2", timeout="10s")])
        self.addCleanup(hb._cleanup)
        return hb.start()

    def test_in_flight_request_finishes(self):
        hb = self.new_hibus()
        result = {}

        def slow():
            try:
                result["r"] = hb.request("POST", "/lmis/slow", body=b'{"slow": 1}', auth=AUTH,
                                         headers={"Content-Type": "application/json",
                                                  "X-Request-Id": "itest-sigterm-1"})
            except Exception as e:  # noqa: BLE001
                result["e"] = e

        before = len(TARGET.requests)
        th = threading.Thread(target=slow)
        th.start()
        try:
            TARGET.wait_for_requests(before + 1, timeout=10)
            self.assertEqual(len(TARGET.requests), before + 1, "the request never reached the"
                             " target")
            time.sleep(0.5)
            t_term = time.monotonic()
            hb.signal(signal.SIGTERM)
            time.sleep(0.3)
            # still finishing the slow one, but no longer accepting
            self.assertTrue(hb.running, "hibus exited before its in-flight request finished")
            self.assertTrue(connect_refused(hb.port),
                            "a new connection was accepted after SIGTERM")
        finally:
            th.join(30)
        self.assertNotIn("e", result, "the in-flight request got no answer: %r"
                         % result.get("e"))
        r = result["r"]
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"received": True, "path": "/slow/2", "bytes": 11})
        code = hb.wait(15)
        self.assertLess(time.monotonic() - t_term, 10, "slow to exit after SIGTERM")
        self.assertEqual(code, 0, hb.log_tail())
        hb.stop()  # checks the exit code and the sanitizer report
        row = PG.row("SELECT id, status, response_status FROM transactions"
                     " WHERE request_id = 'itest-sigterm-1'")
        self.assertIsNotNone(row)
        self.assertEqual(row["id"], int(r.headers["x-hibus-transaction"]))
        self.assertEqual(row["status"], "successful")
        self.assertEqual(row["response_status"], 200)
        self.assertTrue(connect_refused(hb.port))

    def test_idle_exits_promptly(self):
        hb = self.new_hibus()
        t0 = time.monotonic()
        hb.stop(timeout=15)
        self.assertLess(time.monotonic() - t0, 5, "idle hibus took long to exit on SIGTERM")


if __name__ == "__main__":
    unittest.main(verbosity=2)
