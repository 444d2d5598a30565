"""Clients that hold connections without using them: slow senders, idle crowds, one
address with many connections. None of them may lock others out."""

import base64
import socket
import threading
import time
import unittest

import harness

PW = "slow-itest-secret"
AUTH = ("lmis-national", PW)
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(
        PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
        channels=[harness.channel("fast", "/fast", TARGET.url + "/any"),
                  harness.channel("slow", "/slow", TARGET.url + "/slow/2.5")],
        settings={"limits": {"max_connections": 40, "request_deadline": "2s",
                             "connections_per_address": 100, "connection_timeout": "60s"}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def closed_within(s, seconds):
    """Seconds until the peer closed s (reading and dropping what it sends), or None."""
    s.settimeout(0.2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - t0
    return None


class SlowClientsTest(harness.TestCase):

    def test_trickled_request_is_cut_at_the_deadline(self):
        # a byte every 200 ms restarts libmicrohttpd's idle timeout each time; the
        # request deadline (2 s) does not care
        s = socket.create_connection(("127.0.0.1", HB.port), timeout=5)
        s.sendall(b"POST /fast HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        cut = None
        while time.monotonic() - t0 < 10:
            try:
                s.send(b"a")
            except OSError:
                cut = time.monotonic() - t0
                break
            if closed_within(s, 0.2) is not None:
                cut = time.monotonic() - t0
                break
        s.close()
        self.assertIsNotNone(cut, "a trickling client was never cut off")
        self.assertLess(cut, 5.0)
        self.assertGreater(cut, 1.0)

    def test_idle_connection_closed_at_the_deadline(self):
        s = socket.create_connection(("127.0.0.1", HB.port), timeout=5)
        t = closed_within(s, 8)
        s.close()
        self.assertIsNotNone(t, "an idle connection outlived the request deadline")
        self.assertLess(t, 5.0)

    def test_idle_workers_exit(self):
        # 20 requests at once to a target that takes 2.5 s: 20 workers run side by side;
        # idle for 5 s, all but 4 exit (their stacks and arenas went unused for good)
        def threads():
            with open("/proc/%d/status" % HB.proc.pid) as f:
                return int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])
        base = threads()
        results = []

        def one():
            results.append(HB.request("POST", "/slow", body=b"{}", headers=JSON, auth=AUTH,
                                      timeout=30).status)
        ts = [threading.Thread(target=one) for _ in range(20)]
        for t in ts:
            t.start()
        time.sleep(1.5)
        peak = threads()
        for t in ts:
            t.join()
        self.assertEqual(results, [200] * 20)
        self.assertGreaterEqual(peak, base + 15)
        harness.wait_until(lambda: threads() <= base + 4, timeout=15,
                           what="idle workers to exit (%d threads before the burst)" % base)

    def test_memory_given_back_after_a_burst(self):
        # 1,000 requests through the workers, then quiet: what the burst freed goes back
        # to the system once (malloc would keep it), and not again while nothing comes
        said = "gave freed memory back to the system (quiet after a burst)"
        before = HB.log_text().count(said)
        with socket.create_connection(("127.0.0.1", HB.port), timeout=10) as s:
            f = s.makefile("rb")
            for _ in range(1000):
                s.sendall(b"GET /no-such-channel HTTP/1.1\r\nHost: x\r\n\r\n")
                length = 0
                while True:
                    line = f.readline()
                    self.assertTrue(line, "connection closed")
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line == b"\r\n":
                        break
                f.read(length)
        harness.wait_until(lambda: HB.log_text().count(said) > before, timeout=15,
                           what="the memory to be given back after the burst")
        time.sleep(3)
        self.assertEqual(HB.log_text().count(said), before + 1)

    def test_long_answer_is_not_cut(self):
        # the deadline covers receiving the request, not the target's 2.5 s answer
        r = HB.request("POST", "/slow", body=b"{}", auth=AUTH, headers=JSON, timeout=20)
        self.assertEqual(r.status, 200, r.body)

    def test_crowd_of_idle_and_slow_connections_does_not_lock_out(self):
        # 100 connections (limit 40), half idle, half sending a partial request: the
        # ones that waited longest make room, and /health and a POST get through
        held = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", HB.port), timeout=5)
            if i % 2:
                s.sendall(b"POST /fast HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            held.append(s)
        try:
            t0 = time.monotonic()
            r = HB.request("GET", "/health", timeout=5)
            self.assertEqual(r.status, 200)
            r = HB.request("POST", "/fast", body=b"{}", auth=AUTH, headers=JSON, timeout=5)
            self.assertEqual(r.status, 200, r.body)
            self.assertLess(time.monotonic() - t0, 5.0)
            # at least 60 of them were closed to make room (the limit is 40)
            closed = sum(1 for s in held if closed_within(s, 0.05) is not None)
            self.assertGreaterEqual(closed, 60)
        finally:
            for s in held:
                s.close()

    def test_answered_even_after_peer_half_closes(self):
        # a whole request followed at once by the end of the client's stream: still
        # answered (the gone-client cleanup waits for an incomplete request)
        with socket.create_connection(("127.0.0.1", HB.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)

    def test_gone_client_is_forgotten_at_once(self):
        # half a request and the end of the stream in one packet: hibus lets go of it
        # within about a second, not at the deadline or the idle timeout; SIGTERM is
        # not held up by it either (tearDownModule stops hibus)
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", HB.port), timeout=5) as s:
                s.sendall(b"POST /fast HTTP/1.1\r\nContent-Le")
        harness.wait_until(lambda: HB.request("GET", "/health").status == 200, timeout=5,
                           what="/health")


class IdleKeptAliveTest(harness.TestCase):

    def test_idle_connections_past_the_limit_are_closed(self):
        # 20 connections kept alive after one answer each (/health, answered in the
        # I/O loop, and a POST answered by a worker); limits.idle_connections is 5:
        # after a second or so only 5 stay, and those still work
        hb = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
                           channels=[harness.channel("fast", "/fast", TARGET.url + "/any")],
                           settings={"limits": {"idle_connections": 5}}, name="idle")
        self.addCleanup(hb._cleanup)
        hb.start()
        auth = base64.b64encode(("%s:%s" % AUTH).encode())
        held = []
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", hb.port), timeout=5)
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            else:
                s.sendall(b"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                          b"\r\nContent-Length: 2\r\nAuthorization: Basic " + auth +
                          b"\r\n\r\n{}")
            self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
            held.append(s)
        try:
            time.sleep(2.5)
            open_ = [s for s in held if closed_within(s, 0.05) is None]
            self.assertEqual(len(open_), 5, "%d kept-alive connections left" % len(open_))
            for s in open_:  # the survivors still answer
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        finally:
            for s in held:
                s.close()

    def test_answered_connection_starts_a_new_deadline(self):
        # a keep-alive client asking /health every 0.8 s is never cut by the 2 s request
        # deadline of the module's hibus (each answer starts its next wait)
        with socket.create_connection(("127.0.0.1", HB.port), timeout=5) as s:
            for _ in range(5):
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
                time.sleep(0.8)


class PerAddressTest(harness.TestCase):

    def test_connections_per_address(self):
        hb = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
                           channels=[harness.channel("fast", "/fast", TARGET.url + "/any")],
                           settings={"limits": {"connections_per_address": 5}}, name="peraddr")
        self.addCleanup(hb._cleanup)
        hb.start()
        # six from one address: one is closed (the 6th that libmicrohttpd accepts; its
        # two I/O threads may accept them in another order than they were opened)
        held = [socket.create_connection(("127.0.0.1", hb.port), timeout=5) for _ in range(5)]
        time.sleep(0.5)
        held.append(socket.create_connection(("127.0.0.1", hb.port), timeout=5))
        try:
            closed = [s for s in held if closed_within(s, 0.5) is not None]
            self.assertEqual(len(closed), 1, "%d of 6 connections were closed" % len(closed))
        finally:
            for s in held:
                s.close()
        harness.wait_until(lambda: hb.request("GET", "/health").status == 200, timeout=5,
                           what="/health once the five are closed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
