"""A sync channel end to end: client -> hibus -> target, and what hibus records."""

import base64
import http.client
import json
import threading
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)

# Exact bytes matter: odd spacing, a newline, non-ASCII text in UTF-8.
REPORT = ('{"facility": "FAC-0042",  "period": "202401",\n'
          ' "items": [{"code": "AMOX250", "stock_on_hand": 120, "consumed": 35,'
          ' "comment": "r\u00e9ception partielle \u2013 ok"}]}').encode("utf-8")

# Passed on byte for byte: percent-encoding and '+' must not be decoded or re-encoded.
QUERY = "period=202401&facility=FAC%2F42&note=a+b%20c"

PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[
        harness.channel("lmis-stock", "/lmis/stock-reports", TARGET.url + "/stock"),
        harness.channel("lmis-failing", "/lmis/failing", TARGET.url + "/status/500"),
        harness.channel("lmis-slow", "/lmis/slow", TARGET.url + "/slow/1.5"),
        harness.channel("lmis-chunked", "/lmis/chunked", TARGET.url + "/chunked"),
        harness.channel("any-type", "/any-type", TARGET.url + "/any", content_types=None),
    ])
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def tx_id_of(test, resp):
    v = resp.headers.get("x-hibus-transaction")
    test.assertIsNotNone(v, "no X-Hibus-Transaction header in %r" % (resp.headers,))
    test.assertRegex(v, r"^[0-9]+$")
    return int(v)


class ForwardTest(harness.TestCase):

    def test_post_is_forwarded_stored_and_reported(self):
        before = len(TARGET.requests)
        r = HB.request("POST", "/lmis/stock-reports?" + QUERY, body=REPORT,
                       auth=AUTH, headers={"Content-Type": "application/json; charset=utf-8",
                                           "X-Request-Id": "itest-forward-1",
                                           "X-Api-Key": "api-key-must-not-be-stored"})
        # --- what the client got
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"received": True, "path": "/stock", "bytes": len(REPORT)})
        self.assertEqual(r.headers.get("x-request-id"), "itest-forward-1")
        self.assertEqual(r.headers.get("x-target"), "hibus-test-target",
                         "the target's own headers must reach the client")
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        tx = tx_id_of(self, r)

        # --- what the target got
        reqs = TARGET.requests[before:]
        self.assertEqual(len(reqs), 1, reqs)
        t = reqs[0]
        self.assertEqual(t.method, "POST")
        self.assertEqual(t.path, "/stock")
        self.assertEqual(t.query, QUERY)
        self.assertEqual(t.body, REPORT)
        self.assertFalse(t.has_header("Authorization"),
                         "client's Authorization was forwarded: %r" % t.header("Authorization"))
        self.assertTrue((t.header("Content-Type") or "").startswith("application/json"),
                        t.headers)

        # --- what was stored
        row = PG.row("SELECT id, request_id, channel, client, method, path, query, status,"
                     " encode(request_body, 'hex') AS body_hex, response_status, request_headers,"
                     " error, finished_at IS NOT NULL AS finished, node"
                     " FROM transactions WHERE id = %d" % tx)
        self.assertIsNotNone(row, "no transactions row with id %d" % tx)
        self.assertEqual(row["request_id"], "itest-forward-1")
        self.assertEqual(row["channel"], "lmis-stock")
        self.assertEqual(row["client"], "lmis-national")
        self.assertEqual(row["method"], "POST")
        self.assertEqual(row["path"], "/lmis/stock-reports")
        self.assertEqual(row["query"], QUERY)
        self.assertEqual(row["status"], "successful")
        self.assertEqual(bytes.fromhex(row["body_hex"]), REPORT)
        self.assertEqual(row["response_status"], 200)
        self.assertIsNone(row["error"])
        self.assertTrue(row["finished"], "finished_at not set")
        hdrs = row["request_headers"]
        self.assertIsInstance(hdrs, dict)
        self.assertEqual(harness.header_values(hdrs, "Authorization"), ["[redacted]"], hdrs)
        self.assertEqual(harness.header_values(hdrs, "X-Api-Key"), ["[redacted]"], hdrs)
        self.assertEqual(harness.header_values(hdrs, "Content-Type"),
                         ["application/json; charset=utf-8"], hdrs)
        self.assertNotIn("api-key-must-not-be-stored", json.dumps(hdrs))
        self.assertNotIn(PASSWORD, json.dumps(hdrs))

        atts = PG.rows("SELECT route, attempt, method, url, status_code, error, duration_ms"
                       " FROM attempts WHERE transaction_id = %d ORDER BY id" % tx)
        self.assertEqual(len(atts), 1, atts)
        a = atts[0]
        self.assertEqual(a["route"], "archive")
        self.assertEqual(a["attempt"], 1)
        self.assertEqual(a["method"], "POST")
        self.assertEqual(a["url"], TARGET.url + "/stock?" + QUERY)
        self.assertEqual(a["status_code"], 200)
        self.assertIsNone(a["error"])
        self.assertGreaterEqual(a["duration_ms"], 0)

        # --- hibus tx ID --json
        j = HB.tx_json(tx)
        self.assertEqual(j["id"], tx)
        self.assertEqual(j["request_id"], "itest-forward-1")
        self.assertEqual(j["channel"], "lmis-stock")
        self.assertEqual(j["client"], "lmis-national")
        self.assertEqual(j["method"], "POST")
        self.assertEqual(j["path"], "/lmis/stock-reports")
        self.assertEqual(j["query"], QUERY)
        self.assertEqual(j["status"], "successful")
        self.assertEqual(j["request_body"], REPORT.decode("utf-8"))
        self.assertEqual(j["response_status"], 200)
        self.assertEqual(json.loads(j["response_body"]),
                         {"received": True, "path": "/stock", "bytes": len(REPORT)})
        self.assertIsNone(j["error"])
        self.assertIsInstance(j["request_headers"], dict)
        self.assertEqual(harness.header_values(j["request_headers"], "Authorization"),
                         ["[redacted]"])
        self.assertEqual(len(j["attempts"]), 1, j["attempts"])
        ja = j["attempts"][0]
        self.assertEqual(ja["route"], "archive")
        self.assertEqual(ja["attempt"], 1)
        self.assertEqual(ja["method"], "POST")
        self.assertEqual(ja["url"], a["url"])
        self.assertEqual(ja["status_code"], 200)
        self.assertIsNone(ja["error"])
        self.assertIn("duration_ms", ja)
        self.assertIn("response_excerpt", ja)

        # --- hibus tx ID (for people)
        h = HB.cli("tx", str(tx), "-c", HB.config_path)
        self.assertEqual(h.returncode, 0, h.stderr)
        self.assertRegex(h.stdout, r"\b%d\b" % tx)
        self.assertIn("successful", h.stdout)
        self.assertIn("lmis-stock", h.stdout)

    def test_target_error_status_passes_through(self):
        before = len(TARGET.requests)
        r = HB.request("POST", "/lmis/failing", body=b'{"n": 1}', auth=AUTH,
                       headers={"Content-Type": "application/json",
                                "X-Request-Id": "itest-forward-500"})
        self.assertEqual(r.status, 500, r.body)
        self.assertEqual(r.json(), {"status": 500, "path": "/status/500", "bytes": 8})
        self.assertEqual(r.headers.get("x-request-id"), "itest-forward-500")
        tx = tx_id_of(self, r)
        self.assertEqual(len(TARGET.requests) - before, 1)
        row = PG.row("SELECT status, response_status, request_id FROM transactions"
                     " WHERE id = %d" % tx)
        self.assertEqual(row, {"status": "completed", "response_status": 500,
                               "request_id": "itest-forward-500"})
        atts = PG.rows("SELECT status_code, error FROM attempts WHERE transaction_id = %d" % tx)
        self.assertEqual(atts, [{"status_code": 500, "error": None}])

    def test_row_is_stored_before_forwarding(self):
        """While the target is still working, the transaction is already in the database."""
        result = {}

        def post():
            result["r"] = HB.request("POST", "/lmis/slow", body=b'{"slow": true}', auth=AUTH,
                                     headers={"Content-Type": "application/json",
                                              "X-Request-Id": "itest-forward-slow"})

        before = len(TARGET.requests)
        th = threading.Thread(target=post)
        th.start()
        try:
            TARGET.wait_for_requests(before + 1, timeout=10)
            self.assertEqual(len(TARGET.requests), before + 1, "target never got the request")
            # the target sleeps 1.5 s: the row must exist now, not yet finished
            row = PG.row("SELECT status, finished_at IS NULL AS open FROM transactions"
                         " WHERE request_id = 'itest-forward-slow'")
            self.assertIsNotNone(row, "no row while the request was being forwarded")
            self.assertIn(row["status"], ("processing", "queued"))
            self.assertTrue(row["open"])
        finally:
            th.join(30)
        self.assertEqual(result["r"].status, 200)
        self.assertEqual(PG.scalar("SELECT status FROM transactions"
                                   " WHERE request_id = 'itest-forward-slow'"), "successful")

    def test_keep_alive_connection(self):
        """Several requests on one client connection, each answered and stored."""
        conn = http.client.HTTPConnection("127.0.0.1", HB.port, timeout=30)
        auth = "Basic " + base64.b64encode(("%s:%s" % AUTH).encode()).decode()
        try:
            ids = []
            for i in range(3):
                body = ('{"keepalive": %d}' % i).encode()
                conn.request("POST", "/lmis/stock-reports", body=body,
                             headers={"Content-Type": "application/json", "Authorization": auth,
                                      "X-Request-Id": "itest-keepalive-%d" % i})
                resp = conn.getresponse()
                data = resp.read()
                self.assertEqual(resp.status, 200, data)
                self.assertEqual(resp.getheader("X-Request-Id"), "itest-keepalive-%d" % i)
                ids.append(int(resp.getheader("X-Hibus-Transaction")))
        finally:
            conn.close()
        self.assertEqual(len(set(ids)), 3, ids)
        rows = PG.psql("SELECT request_id, status FROM transactions WHERE id IN (%s) ORDER BY id"
                       % ",".join(map(str, ids)))
        self.assertEqual(rows, [["itest-keepalive-%d" % i, "successful"] for i in range(3)])

    def test_concurrent_requests(self):
        """More requests at once than database connections (pool: 4)."""
        n_threads, per_thread = 12, 3
        results, lock = [], threading.Lock()

        def worker(t):
            for i in range(per_thread):
                body = ('{"worker": %d, "n": %d}' % (t, i)).encode()
                try:
                    r = HB.request("POST", "/lmis/stock-reports", body=body, auth=AUTH,
                                   headers={"Content-Type": "application/json",
                                            "X-Request-Id": "itest-conc-%d-%d" % (t, i)})
                    res = (body, r.status, r.headers.get("x-hibus-transaction"))
                except Exception as e:  # noqa: BLE001
                    res = (body, repr(e), None)
                with lock:
                    results.append(res)

        before = len(TARGET.requests)
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        bad = [r for r in results if r[1] != 200]
        self.assertEqual(bad, [])
        self.assertEqual(len(results), n_threads * per_thread)
        self.assertEqual(sorted(t.body for t in TARGET.requests[before:]),
                         sorted(r[0] for r in results))
        ids = ",".join(r[2] for r in results)
        stored = PG.psql("SELECT convert_from(request_body, 'UTF8'), status, request_id"
                         " FROM transactions WHERE id IN (%s)" % ids)
        self.assertEqual(len(stored), len(results))
        for body, status, rid in stored:
            d = json.loads(body)
            self.assertEqual(rid, "itest-conc-%d-%d" % (d["worker"], d["n"]))
            self.assertEqual(status, "successful")

    def test_hop_by_hop_headers_of_target_removed(self):
        """The target answers chunked with Connection/Keep-Alive: the client gets the body
        intact and none of the target's hop-by-hop headers."""
        r = HB.request("POST", "/lmis/chunked", body=b'{"c": 1}', auth=AUTH,
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"received": True, "path": "/chunked", "bytes": 8})
        self.assertNotIn("keep-alive", r.headers)
        self.assertEqual(r.headers.get("x-target"), "hibus-test-target")
        self.assertNotIn("keep-alive", r.headers.get("connection", "").lower())
        te = r.headers.get("transfer-encoding", "")
        self.assertNotIn(",", te, "Transfer-Encoding sent twice: %r" % te)
        tx = tx_id_of(self, r)
        hdrs = PG.scalar("SELECT response_headers FROM transactions WHERE id = %d" % tx)
        if hdrs:
            stored = json.loads(hdrs)
            self.assertEqual(harness.header_values(stored, "Keep-Alive"), [], stored)
            self.assertEqual(harness.header_values(stored, "Transfer-Encoding"), [], stored)

    def test_no_content_type_is_invented(self):
        """A pass-through request without Content-Type reaches the target without one (the
        HTTP library would otherwise label it a form, and add Accept); one that has it
        keeps it."""
        for sent in (None, "text/csv; charset=utf-8"):
            before = len(TARGET.requests)
            r = HB.request("POST", "/any-type", body=b"a,b\n1,2\n", auth=AUTH,
                           headers={"Content-Type": sent} if sent else {})
            self.assertEqual(r.status, 200, r.body)
            TARGET.wait_for_requests(before + 1)
            got = TARGET.requests[before]
            self.assertEqual(got.header("content-type"), sent, got.headers)
            self.assertIsNone(got.header("accept"), got.headers)
            self.assertEqual(got.body, b"a,b\n1,2\n")

    def test_unknown_transaction_id(self):
        r = HB.cli("tx", "987654321", "-c", HB.config_path, "--json")
        self.assertNotEqual(r.returncode, 0, "hibus tx of a missing id exited 0: %r" % r.stdout)
        self.assertTrue(r.stderr.strip(), "no message on stderr")


class HealthTest(harness.TestCase):

    def test_health(self):
        r = HB.request("GET", "/health")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(r.json().get("status"), "ok")
        self.assertTrue(r.headers.get("x-request-id"), "no generated X-Request-Id")

    def test_ready(self):
        r = HB.request("GET", "/ready")
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(r.json().get("status"), "ready")

    def test_request_id_echo_and_generation(self):
        r = HB.request("GET", "/health", headers={"X-Request-Id": "caller-chosen-42"})
        self.assertEqual(r.headers.get("x-request-id"), "caller-chosen-42")
        a = HB.request("GET", "/health").headers.get("x-request-id")
        b = HB.request("GET", "/health").headers.get("x-request-id")
        self.assertTrue(a and b)
        self.assertNotEqual(a, b, "generated request ids must differ")
        # made ids are version 7 UUIDs (RFC 9562): the time of the request in their
        # first 48 bits, so that the request id index grows in order
        t0 = int(time.time() * 1000)
        made = [HB.request("GET", "/health").headers.get("x-request-id") for _ in range(20)]
        t1 = int(time.time() * 1000)
        for rid in made:
            self.assertRegex(rid, r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                  r"[0-9a-f]{12}$")
            ms = int(rid.replace("-", "")[:12], 16)
            self.assertTrue(t0 - 5 <= ms <= t1 + 5, (rid, t0, ms, t1))
        self.assertEqual(len(set(made)), len(made))


if __name__ == "__main__":
    unittest.main(verbosity=2)
