"""One request, several routes: the primary DHIS2 import plus a secondary archive,
`when` conditions on the primary's answer, and OpenHIM mediator answers."""

import http.client
import json
import time
import unittest

import harness
from harness import DHIS2Sim

PASSWORD = "lmis-fanout-secret"
AUTH = ("lmis-national", PASSWORD)

PG = SIM = TARGET = HB = None
DEAD_PORT = None

LMIS = harness.PIPELINE_SAMPLES["lmis-report.json"]["values"]
QUALITY = ["non_negative", "required_measures", {"rule": "balance", "tolerance": 0}]


def fchan(name, path, routes, transform=True):
    d = {"name": name, "priority": 10,
         "match": {"path": path, "methods": ["POST"], "content_types": ["application/json"]},
         "allow": {"roles": ["lmis"]}, "mode": "sync", "routes": routes}
    if transform:
        d["transform"] = {"reader": "lmis-report", "mapping": "itest", "quality": QUALITY,
                          "writer": "dhis2-datavalueset"}
        d["unmapped"] = "reject"
    return d


def mediator_chan(name, target_path):
    """A channel without transform whose one route is an OpenHIM-style mediator."""
    return fchan("openhim-" + name, "/openhim/" + name,
                 [{"name": "mediator", "mediator": "http", "url": TARGET.url + target_path,
                   "primary": True, "timeout": "5s"}], transform=False)


def archive(url, **extra):
    d = {"name": "archive", "mediator": "http", "url": url, "body": "original", "timeout": "5s"}
    d.update(extra)
    return d


def setUpModule():
    global PG, SIM, TARGET, HB, DEAD_PORT
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    TARGET = harness.Target().start()
    DEAD_PORT = harness.free_port()
    channels = [
        fchan("fan-when", "/fan/when",
              [harness.sim_route(SIM), archive(TARGET.url + "/archive", when=["2xx"])]),
        fchan("fan-always", "/fan/always",
              [harness.sim_route(SIM), archive(TARGET.url + "/archive")]),
        fchan("fan-down", "/fan/down",
              [harness.sim_route(SIM),
               archive("http://127.0.0.1:%d/archive" % DEAD_PORT, timeout="3s")]),
        fchan("fan-failed", "/fan/failed",
              [harness.sim_route(SIM), archive(TARGET.url + "/dead-letter", when=["failed"])]),
        fchan("fan-timeout", "/fan/timeout",
              [harness.sim_route(SIM, timeout="1s"),
               archive(TARGET.url + "/dead-letter", when=["failed"])]),
        mediator_chan("ok", "/med/openhim"),
        mediator_chan("errors", "/med/errors"),
        mediator_chan("bad-status", "/med/bad-status"),
        mediator_chan("malformed", "/med/malformed"),
        mediator_chan("failed", "/med/failed"),
    ]
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=channels, settings={"mappings": "mappings"},
                       files={"mappings/itest.yaml": harness.mapping_doc()})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, SIM, TARGET, PG)


class FanoutTest(harness.TestCase):

    def setUp(self):
        SIM.reset()
        TARGET.clear()

    def tearDown(self):
        SIM.clear_faults()

    def post(self, path, body):
        return HB.request("POST", path, body=body, headers={"Content-Type": "application/json"},
                          auth=AUTH)

    def tx_of(self, resp):
        v = resp.headers.get("x-hibus-transaction")
        self.assertIsNotNone(v, "no X-Hibus-Transaction header in %r" % (resp.headers,))
        return int(v)

    def tx_row(self, tx):
        return PG.row("SELECT channel, status, response_status, error FROM transactions"
                      " WHERE id = %d" % tx)

    def attempts(self, tx):
        return PG.rows("SELECT route, attempt, url, status_code, error, details"
                       " FROM attempts WHERE transaction_id = %d ORDER BY id" % tx)

    def routes_by_name(self, body):
        self.assertIsInstance(body.get("routes"), list, body)
        return {r.get("route"): r for r in body["routes"]}

    # --- primary + secondary

    def test_both_routes_succeed(self):
        payload = harness.pipeline_data("lmis-report.json")
        r = self.post("/fan/when", payload)
        self.assertEqual(r.status, 200, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "successful", body)
        self.assertEqual([x.get("route") for x in body["routes"]], ["dhis2", "archive"], body)
        rs = self.routes_by_name(body)
        self.assertEqual(rs["dhis2"].get("outcome"), "successful")
        self.assertEqual(rs["dhis2"]["import"].get("imported"), 24)
        self.assertEqual(rs["archive"].get("outcome"), "successful", rs["archive"])
        self.assertEqual(rs["archive"].get("status_code"), 200, rs["archive"])
        # DHIS2 got the data, the archive the raw bytes
        self.assertEqual(harness.normalize_values(SIM.values()), LMIS)
        reqs = TARGET.wait_for_requests(1, timeout=5)
        self.assertEqual([(q.method, q.path) for q in reqs], [("POST", "/archive")], reqs)
        self.assertEqual(reqs[0].body, payload)
        self.assertTrue((reqs[0].header("Content-Type") or "").startswith("application/json"))
        self.assertFalse(reqs[0].has_header("Authorization"))
        # the log
        self.assertEqual(self.tx_row(tx), {"channel": "fan-when", "status": "successful",
                                           "response_status": 200, "error": None})
        atts = self.attempts(tx)
        self.assertEqual([(a["route"], a["status_code"], a["error"]) for a in atts],
                         [("dhis2", 200, None), ("archive", 200, None)], atts)
        self.assertEqual(atts[1]["url"], TARGET.url + "/archive")
        self.assertEqual(atts[0]["details"].get("imported"), 24, atts[0])

    def test_archive_down(self):
        r = self.post("/fan/down", harness.pipeline_data("lmis-report.json"))
        self.assertEqual(r.status, 200, r.body[:2000])  # the primary took the data
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "completed_with_errors", body)
        rs = self.routes_by_name(body)
        self.assertEqual(rs["dhis2"].get("outcome"), "successful", rs)
        self.assertEqual(rs["archive"].get("outcome"), "failed", rs)
        self.assertTrue(rs["archive"].get("error"), rs["archive"])
        self.assertEqual(harness.normalize_values(SIM.values()), LMIS)
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"]), ("completed_with_errors", 200))
        atts = self.attempts(tx)
        self.assertEqual([a["route"] for a in atts], ["dhis2", "archive"], atts)
        self.assertEqual(atts[0]["status_code"], 200)
        self.assertIsNone(atts[1]["status_code"], atts[1])
        self.assertTrue(atts[1]["error"], atts[1])
        self.assertEqual(atts[1]["url"], "http://127.0.0.1:%d/archive" % DEAD_PORT)

    def test_secondary_when_2xx_not_run_when_primary_fails(self):
        SIM.faults(fail_status=500, fail_count=1)
        r = self.post("/fan/when", harness.pipeline_data("lmis-report.json"))
        self.assertEqual(r.status, 502, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "failed", body)
        rs = self.routes_by_name(body)
        self.assertEqual(rs["dhis2"].get("outcome"), "failed", rs)
        self.assertEqual(rs["dhis2"].get("status_code"), 500, rs)
        if "archive" in rs:
            self.assertEqual(rs["archive"].get("outcome"), "skipped", rs)
        self.assertEqual(TARGET.requests, [], "the archive ran although the primary failed")
        self.assertEqual(SIM.values(), [])
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"]), ("failed", 502))
        atts = self.attempts(tx)
        self.assertEqual([(a["route"], a["status_code"]) for a in atts], [("dhis2", 500)], atts)

    def test_secondary_when_failed_runs_only_on_failure(self):
        payload = harness.pipeline_data("lmis-report.json")
        r = self.post("/fan/failed", payload)
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(r.json().get("status"), "successful", r.body)
        self.assertEqual(TARGET.requests, [])
        self.assertEqual(len(self.attempts(self.tx_of(r))), 1)

        SIM.reset()
        SIM.faults(fail_status=503, fail_count=1)
        r = self.post("/fan/failed", payload)
        self.assertEqual(r.status, 502, r.body[:2000])
        tx = self.tx_of(r)
        self.assertEqual(r.json().get("status"), "failed", r.body)
        reqs = TARGET.wait_for_requests(1, timeout=5)
        self.assertEqual([(q.path, q.body) for q in reqs], [("/dead-letter", payload)])
        self.assertEqual([(a["route"], a["status_code"]) for a in self.attempts(tx)],
                         [("dhis2", 503), ("archive", 200)])
        self.assertEqual(self.tx_row(tx)["status"], "failed")

    def test_primary_timeout_is_504_and_dead_letter_runs(self):
        payload = harness.pipeline_data("lmis-report.json")
        SIM.faults(stall_seconds=4, stall_count=1)
        t0 = time.monotonic()
        r = self.post("/fan/timeout", payload)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 504, r.body[:2000])
        self.assertLess(took, 3.5, "the 1s route timeout was not applied")
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "failed", body)
        rs = self.routes_by_name(body)
        self.assertEqual(rs["dhis2"].get("outcome"), "failed", rs)
        self.assertTrue(rs["dhis2"].get("error"), rs)
        self.assertEqual(rs["archive"].get("outcome"), "successful", rs)
        reqs = TARGET.wait_for_requests(1, timeout=5)
        self.assertEqual([(q.path, q.body) for q in reqs], [("/dead-letter", payload)])
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"]), ("failed", 504))
        atts = self.attempts(tx)
        self.assertEqual([(a["route"], a["status_code"]) for a in atts],
                         [("dhis2", None), ("archive", 200)], atts)
        self.assertTrue(atts[0]["error"], atts[0])

    def test_primary_connection_dropped(self):
        payload = harness.pipeline_data("lmis-report.json")
        SIM.faults(drop_count=5)  # every connection of this delivery is dropped
        before = SIM.stats()
        r = self.post("/fan/failed", payload)
        after = SIM.stats()
        self.assertEqual(r.status, 502, r.body[:2000])
        tx = self.tx_of(r)
        self.assertEqual(r.json().get("status"), "failed", r.body)
        self.assertEqual(SIM.values(), [])
        atts = self.attempts(tx)
        # one attempt row per POST the simulator received (its own stats call aside):
        # two when libcurl resent on a fresh connection after a kept-alive one died
        sent = after["requests"] - before["requests"] - 1
        self.assertIn(sent, (1, 2))
        self.assertEqual([(a["route"], a["status_code"]) for a in atts],
                         [("dhis2", None)] * sent + [("archive", 200)], atts)
        self.assertTrue(all(a["error"] for a in atts[:sent]), atts)
        self.assertEqual(self.tx_row(tx)["status"], "failed")
        reqs = TARGET.wait_for_requests(1, timeout=5)
        self.assertEqual([(q.path, q.body) for q in reqs], [("/dead-letter", payload)])

    def test_dropped_post_resend_is_recorded(self):
        """A target that reads the POST and closes a kept-alive connection without answering
        may have acted on it. libcurl then sends it again on a new connection by itself (it
        has no switch for that); hibus must record that send as an attempt of its own."""
        payload = harness.pipeline_data("lmis-report.json")
        # a first delivery leaves a kept-alive connection to the simulator behind
        self.assertEqual(self.post("/fan/failed", payload).status, 200)
        SIM.reset()
        TARGET.clear()
        SIM.faults(drop_count=1)
        before = SIM.stats()
        r = self.post("/fan/failed", payload)
        after = SIM.stats()
        self.assertEqual(after["faults"], before["faults"] + 1, "the simulator dropped nothing")
        tx = self.tx_of(r)
        n_dhis2 = len([a for a in self.attempts(tx) if a["route"] == "dhis2"])
        # requests the simulator saw between the two stats calls, its own stats call aside
        seen = after["requests"] - before["requests"] - 1
        self.assertEqual(seen, n_dhis2,
                         "the simulator received %d POSTs, hibus recorded %d dhis2 attempt(s) "
                         "and answered %d %r" % (seen, n_dhis2, r.status, r.body[:400]))
        self.assertEqual(n_dhis2, 2)
        first, second = [a for a in self.attempts(tx) if a["route"] == "dhis2"]
        self.assertIsNone(first["status_code"])
        self.assertIn("sent again on a new connection", first["error"])
        self.assertEqual((first["attempt"], second["attempt"]), (1, 2))
        self.assertEqual(second["status_code"], 200)
        # a DHIS2 import is idempotent: the second send stored the report
        self.assertEqual(r.status, 200, r.body[:2000])

    # --- OpenHIM mediators on channels without transform

    def test_openhim_mediator_successful(self):
        ans = harness.openhim_answer(
            status="Successful", response_status=201, body='{"ok":true}',
            properties={"imported": "24", "ignored": "0"})
        TARGET.set_openhim("/med/openhim", ans)
        payload = harness.pipeline_data("lmis-report.json")
        r = self.post("/openhim/ok", payload)
        self.assertEqual(r.status, 201, r.body[:2000])
        self.assertEqual(r.body, b'{"ok":true}')
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        r.headers)
        self.assertNotIn("openhim", r.headers.get("content-type", ""))
        tx = self.tx_of(r)
        reqs = TARGET.requests
        self.assertEqual([(q.path, q.body) for q in reqs], [("/med/openhim", payload)])
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"]), ("successful", 201))
        atts = self.attempts(tx)
        self.assertEqual(len(atts), 1, atts)
        d = atts[0]["details"]
        self.assertIsInstance(d, dict, atts[0])
        self.assertEqual(d.get("openhim_status"), "Successful", d)
        self.assertEqual(d.get("mediator_urn"), "urn:mediator:itest-openhim", d)
        self.assertEqual(d.get("orchestrations"), ans["orchestrations"], d)
        self.assertEqual(d.get("properties"), {"imported": "24", "ignored": "0"}, d)
        j = HB.tx_json(tx)
        self.assertEqual(j["status"], "successful")
        self.assertEqual(j["response_status"], 201)
        self.assertEqual(j["attempts"][0]["details"], d)

    def test_openhim_mediator_completed_with_errors(self):
        # the inner headers: its own ones reach the client, framing ones (a stale
        # content-length, transfer-encoding, connection) must not break the answer
        TARGET.set_openhim("/med/errors", harness.openhim_answer(
            status="Completed with error(s)", response_status=200, body='{"partial":true}',
            headers={"content-type": "application/json", "x-mediator-note": "2 of 3 stored",
                     "content-length": "999", "transfer-encoding": "chunked",
                     "connection": "close"}))
        r = self.post("/openhim/errors", harness.pipeline_data("lmis-report.json"))
        self.assertEqual(r.status, 200, r.body[:2000])
        self.assertEqual(r.body, b'{"partial":true}')
        self.assertEqual(r.headers.get("x-mediator-note"), "2 of 3 stored", r.headers)
        self.assertEqual(r.headers.get("content-length"), "16", r.headers)
        self.assertNotIn("transfer-encoding", r.headers)
        tx = self.tx_of(r)
        self.assertEqual(self.tx_row(tx)["status"], "completed_with_errors")
        self.assertEqual(self.attempts(tx)[0]["details"].get("openhim_status"),
                         "Completed with error(s)")

    def test_openhim_mediator_failed(self):
        TARGET.set_openhim("/med/failed", harness.openhim_answer(
            status="Failed", response_status=500, body='{"error":"upstream down"}',
            orchestrations=[]))
        r = self.post("/openhim/failed", harness.pipeline_data("lmis-report.json"))
        self.assertEqual(r.status, 500, r.body[:2000])
        self.assertEqual(r.body, b'{"error":"upstream down"}')
        tx = self.tx_of(r)
        self.assertEqual(self.tx_row(tx)["status"], "failed")
        d = self.attempts(tx)[0]["details"]
        self.assertEqual((d.get("openhim_status"), d.get("orchestrations")), ("Failed", []), d)

    def test_openhim_invalid_inner_status(self):
        """A mediator answer whose response.status is no HTTP status is a bad gateway,
        not something to hand to the client."""
        TARGET.set_openhim("/med/bad-status", {
            "x-mediator-urn": "urn:mediator:broken", "status": "Successful",
            "response": {"status": 99999, "headers": {}, "body": "x"}})
        try:
            r = self.post("/openhim/bad-status", harness.pipeline_data("lmis-report.json"))
        except http.client.HTTPException as e:
            self.fail("hibus closed the connection without an answer (%r)" % e)
        self.assertEqual(r.status, 502, (r.status, r.body[:500]))
        tx = self.tx_of(r)
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"]), ("failed", 502))
        self.assertTrue(self.attempts(tx)[0]["error"])
        self.assertEqual(HB.request("GET", "/health").status, 200)

    def test_openhim_malformed_answer(self):
        """application/json+openhim that is no mediator response: hibus records an
        error on the attempt, so the transaction cannot be successful."""
        TARGET.set_openhim("/med/malformed",
                           b'{"x-mediator-urn": "u", "status": "Successful", "response": ')
        r = self.post("/openhim/malformed", harness.pipeline_data("lmis-report.json"))
        tx = self.tx_of(r)
        atts = self.attempts(tx)
        self.assertEqual(len(atts), 1, atts)
        self.assertTrue(atts[0]["error"], atts[0])
        row = self.tx_row(tx)
        self.assertEqual((row["status"], row["response_status"], r.status),
                         ("failed", 502, 502), "attempt error: %s" % atts[0]["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
