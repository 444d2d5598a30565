"""Async channels as a posting client sees them: 202 with a Location once stored, the
outcome at that Location (its own transactions only), and a payload that cannot be
delivered refused at once with 422."""

import json
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
OTHER = ("lmis-district", "district-secret")
PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    plain = harness.channel("plain", "/async/plain", TARGET.url + "/archive", mode="async")
    checked = harness.channel("checked", "/async/checked", TARGET.url + "/checked",
                              mode="async", transform={"reader": "lmis-report"})
    checked["routes"][0]["body"] = "original"
    plain_sync = harness.channel("plain-sync", "/sync/plain", TARGET.url + "/archive")
    # the same transform in both modes, its writer's output sent to the target
    xf = {"reader": "lmis-report", "mapping": "m", "writer": "dhis2-datavalueset"}
    xf_async = harness.channel("xf-async", "/async/xf", TARGET.url + "/xf", mode="async",
                               transform=xf)
    xf_sync = harness.channel("xf-sync", "/sync/xf", TARGET.url + "/xf", transform=xf)
    for ch in (xf_async, xf_sync):
        ch["routes"][0]["body"] = "transformed"
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD),
                                        harness.client("lmis-district", ["lmis"], OTHER[1])],
                       channels=[plain, checked, plain_sync, xf_async, xf_sync],
                       settings={"delivery": {"workers": 2, "poll": "200ms"},
                                 "redact_headers": ["X-Api-Key"], "mappings": "mappings",
                                 "log": {"level": "debug"}},
                       files={"mappings/m.yaml": harness.mapping_doc()})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


REPORT = (b'{"facility": "FAC-0042", "period": "2026-10", "lines": [{"commodity": "AMOX250",'
          b' "stock_on_hand": 10}]}')


class AsyncTest(harness.TestCase):

    def post(self, path, body, auth=AUTH):
        return HB.request("POST", path, body=body, auth=auth,
                          headers={"Content-Type": "application/json"})

    def outcome(self, location, auth=AUTH):
        return harness.wait_until(
            lambda: (lambda r: r if r.status == 200 and r.json()["status"] not in
                     ("queued", "processing") else None)(HB.request("GET", location, auth=auth)),
            timeout=15, what="the outcome at %s" % location)

    def test_202_location_and_outcome(self):
        r = self.post("/async/plain", b'{"n": 1}')
        self.assertEqual(r.status, 202, r.body)
        body = r.json()
        tx = body["id"]
        self.assertEqual(body["status"], "queued")
        self.assertEqual(body["location"], "/transactions/%d" % tx)
        self.assertEqual(r.headers.get("location"), "/transactions/%d" % tx)
        self.assertEqual(r.headers.get("x-hibus-transaction"), str(tx))
        self.assertEqual(body["request_id"], r.headers.get("x-request-id"))
        # stored before the answer, whatever the workers did since
        self.assertIn(PG.scalar("SELECT status FROM transactions WHERE id = %d" % tx),
                      ("queued", "processing", "successful"))

        got = self.outcome(body["location"]).json()
        self.assertEqual(got["status"], "successful")
        self.assertEqual(got["id"], tx)
        self.assertEqual(got["channel"], "plain")
        self.assertEqual([(a["route"], a["attempt"], a["status_code"]) for a in got["attempts"]],
                         [("archive", 1, 200)])
        self.assertNotIn("request_body", got)
        self.assertNotIn("request_headers", got)
        self.assertEqual(TARGET.requests[-1].body, b'{"n": 1}')

    def test_sync_and_async_send_the_same(self):
        # The same request through a sync and an async channel: the target gets the
        # same body, query and headers, and never a redacted one (a delivery worker has
        # only the stored, redacted headers, so sync forwards no more).
        headers = {"Content-Type": "application/json", "X-Api-Key": "must-stay-with-hibus",
                   "Cookie": "session=abc", "X-Report-Source": "lmis-national",
                   "X-Request-Id": "same-request"}
        def received(path, body):
            before = len(TARGET.requests)
            r = HB.request("POST", path, body=body, auth=AUTH, headers=headers)
            self.assertIn(r.status, (200, 202), r.body)
            TARGET.wait_for_requests(before + 1)
            t = TARGET.requests[before]
            return (t.body, t.query, sorted((k.lower(), v) for k, v in t.headers
                                            if k.lower() not in ("content-length", "host",
                                                                 "connection")))

        # a pass-through channel, and one whose route sends the transform's output
        for sync, asyn, body in (("/sync/plain", "/async/plain", b'{"same": true}'),
                                 ("/sync/xf", "/async/xf", REPORT)):
            a = received(sync + "?a=1&b=x%20y", body)
            b = received(asyn + "?a=1&b=x%20y", body)
            self.assertEqual(a, b, sync)
        xf_body = json.loads(a[0])
        self.assertEqual(xf_body.get("period"), "202610", xf_body)
        self.assertEqual(len(xf_body.get("dataValues")), 1, xf_body)
        got = {"sync": received("/sync/plain?a=1&b=x%20y", b'{"same": true}')}
        body, query, hdrs = got["sync"]
        hdrs = dict(hdrs)
        self.assertEqual((body, query), (b'{"same": true}', "a=1&b=x%20y"))
        self.assertEqual(hdrs.get("x-report-source"), "lmis-national")
        self.assertEqual(hdrs.get("x-request-id"), "same-request")
        for secret in ("x-api-key", "cookie", "authorization"):
            self.assertNotIn(secret, hdrs)

    def test_the_transform_runs_once(self):
        # The listener prepares an async payload to refuse a bad one at once; a worker
        # of the same process takes that rather than run the transform again (the
        # debug log says so), and what it sends is the same as when it prepares.
        txs = []
        for _ in range(5):
            r = self.post("/async/xf", REPORT)
            self.assertEqual(r.status, 202, r.body)
            txs.append(r.json()["id"])
            got = self.outcome(r.json()["location"]).json()
            self.assertEqual(got["status"], "successful", got)
            self.assertEqual(json.loads(TARGET.requests[-1].body)["period"], "202610")
        log = HB.log_text()
        handed = [tx for tx in txs
                  if "tx=%d: using the payload the listener prepared" % tx in log]
        # A worker woken by the insert may claim it before the listener hands over:
        # then it prepares again, which only costs time. Most rounds take it.
        self.assertGreaterEqual(len(handed), 1, log[-4000:])

    def test_only_the_owner_sees_it(self):
        r = self.post("/async/plain", b'{"n": 2}')
        loc = r.json()["location"]
        self.outcome(loc)
        other = HB.request("GET", loc, auth=OTHER)
        self.assertEqual(other.status, 404, other.body)
        self.assertEqual(other.json()["code"], "HIBUS_E_NOT_FOUND")
        anon = HB.request("GET", loc)
        self.assertEqual(anon.status, 401)
        for bad in ("/transactions/abc", "/transactions/0", "/transactions/99999999",
                    "/transactions/"):
            self.assertEqual(HB.request("GET", bad, auth=AUTH).status, 404, bad)

    def test_undeliverable_payload_is_refused_at_once(self):
        before = len(TARGET.requests)
        r = self.post("/async/checked", b'{"facility": "FAC-0042", "period": ')
        self.assertEqual(r.status, 422, r.body)
        body = r.json()
        self.assertEqual(body["code"], "HIBUS_E_INVALID")
        self.assertTrue(body["problems"] and body["problems"][0]["stage"] == "reader", body)
        tx = body["transaction"]
        row = PG.row("SELECT status, rounds, next_attempt_at FROM transactions WHERE id = %d" % tx)
        self.assertEqual(row, {"status": "rejected", "rounds": 0, "next_attempt_at": None})
        # a good one goes through, with its order key
        r = self.post("/async/checked", REPORT)
        self.assertEqual(r.status, 202, r.body)
        got = self.outcome(r.json()["location"]).json()
        self.assertEqual(got["status"], "successful")
        self.assertEqual(PG.scalar("SELECT order_key FROM transactions WHERE id = %d"
                                   % r.json()["id"]), "checked|FAC-0042|202610")
        self.assertEqual(len(TARGET.requests), before + 1)
        self.assertEqual(TARGET.requests[-1].body, REPORT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
