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
                                                     TARGET.url + "/slow/2", timeout="10s")],
                           # idle workers wait this long for work: an exit that waited
                           # for them would stand out from a prompt one
                           settings={"delivery": {"poll": "60s"}})
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
            # in flight: the target holds it for 2 s from here
            TARGET.wait_for_requests(before + 1, timeout=10)
            self.assertEqual(len(TARGET.requests), before + 1, "the request never reached the"
                             " target")
            t_term = time.monotonic()
            hb.signal(signal.SIGTERM)
            # no longer accepting (the listening socket is closed) ...
            harness.wait_until(lambda: connect_refused(hb.port), timeout=10, interval=0.05,
                               what="new connections to be refused after SIGTERM")
            # ... but still finishing the slow one
            self.assertTrue(th.is_alive(), "the in-flight request was answered before hibus"
                            " stopped accepting")
            self.assertTrue(hb.running, "hibus exited before its in-flight request finished")
        finally:
            th.join(30)
        self.assertNotIn("e", result, "the in-flight request got no answer: %r"
                         % result.get("e"))
        r = result["r"]
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"received": True, "path": "/slow/2", "bytes": 11})
        code = hb.wait(20)
        # The request ends 2 s after it reached the target; hibus must exit soon after,
        # not after a delivery poll (60 s here) or delivery.drain (30 s). 15 s leaves
        # room for a slow exit under ASan (leak check) on a loaded machine.
        self.assertLess(time.monotonic() - t_term, 15, "slow to exit after SIGTERM")
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
        hb.stop(timeout=20)
        # promptly: well under a delivery poll (60 s here) or delivery.drain (30 s),
        # with room for a slow exit under ASan on a loaded machine
        self.assertLess(time.monotonic() - t0, 10, "idle hibus took long to exit on SIGTERM")


if __name__ == "__main__":
    unittest.main(verbosity=2)
