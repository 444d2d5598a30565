"""Alerts: a channel's failure rate, DHIS2 import conflicts and an old queued transaction
are posted to alerts.webhook as JSON, once when they start, and once more when they are
over; several hibus processes on one database send one notice between them; a webhook
that does not take a notice gets it again at the next look."""

import json
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
JSON = {"Content-Type": "application/json"}
GHOST_OU = "Gh0stUnit01"
WINDOW_S = 4

PG = SIM = HOOK = HB = None


report = harness.stock_report


def alerts_settings(webhook):
    return {"webhook": webhook, "every": "1s", "window": "%ds" % WINDOW_S,
            "failure_percent": 50, "min_finished": 3, "queue_age": "3s", "repeat": "1h"}


def setUpModule():
    global PG, SIM, HOOK, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    HOOK = harness.Target().start()
    dead = "http://127.0.0.1:%d/x" % harness.free_port()
    stock = harness.sim_channel("stock", "/stock", SIM)
    chans = [stock]
    for name in ("down", "rare", "later", "twice"):
        chans.append(harness.channel(name, "/" + name, dead, timeout="1s"))
    stuck = harness.channel("stuck", "/stuck", dead, timeout="1s", mode="async")
    stuck["retry"] = {"backoff": {"initial": "1h", "max": "1h"}}
    chans.append(stuck)
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=chans,
                       settings={"mappings": "mappings",
                                 "delivery": {"workers": 1, "poll": "200ms"},
                                 "alerts": alerts_settings(HOOK.url + "/hook")},
                       files={"mappings/m.yaml": harness.mapping_doc(
                           org_units=dict(harness.DHIS2Sim.ORG_UNITS, **{"FAC-GHOST": GHOST_OU}))})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, HOOK, SIM, PG)


def post(path, body=b'{"n": 1}'):
    return HB.request("POST", path, body=body, auth=AUTH, headers=JSON)


def notices(channel, kind=None, status=None):
    out = []
    for r in HOOK.requests:
        if r.path != "/hook":
            continue
        n = json.loads(r.body)
        if n["channel"] == channel and (kind is None or n["alert"] == kind) and \
                (status is None or n["status"] == status):
            out.append(n)
    return out


def wait_notice(channel, kind, status, timeout=20):
    return harness.wait_until(lambda: (notices(channel, kind, status) or [None])[0],
                              timeout=timeout,
                              what="a %s %s notice for channel %s" % (status, kind, channel))


class AlertsTest(harness.TestCase):

    def test_failure_rate_fires_once_then_resolves(self):
        for _ in range(4):
            self.assertEqual(post("/down").status, 502)
        n = wait_notice("down", "failure_rate", "firing")
        self.assertEqual((n["source"], n["value"], n["threshold"], n["window_seconds"]),
                         ("hibus", 1.0, 0.5, WINDOW_S))
        self.assertIn("100% of the transactions", n["summary"])
        self.assertRegex(n["node"], r"^.+:\d+$")
        r = [q for q in HOOK.requests if q.path == "/hook"][0]
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        # once the failures are out of the window: the recovery, once, naming since when
        done = wait_notice("down", "failure_rate", "resolved", timeout=WINDOW_S + 15)
        self.assertRegex(done["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertIn("resolved", done["summary"])
        time.sleep(2.5)  # two more looks
        self.assertEqual(len(notices("down", "failure_rate", "firing")), 1)
        self.assertEqual(len(notices("down", "failure_rate", "resolved")), 1)

    def test_too_few_to_judge(self):
        for _ in range(2):  # under min_finished
            self.assertEqual(post("/rare").status, 502)
        time.sleep(3)
        self.assertEqual(notices("rare"), [])

    def test_conflicts(self):
        r = post("/stock", report("FAC-GHOST", "2026-10"))
        self.assertEqual(r.status, 502, r.body)
        n = wait_notice("stock", "conflicts", "firing")
        self.assertEqual(n["value"], 1)
        self.assertIn("import conflicts", n["summary"])

    def test_queue_age(self):
        r = post("/stuck")
        self.assertEqual(r.status, 202, r.body)
        n = wait_notice("stuck", "queue_age", "firing")
        self.assertGreater(n["value"], 3)
        self.assertEqual(n["threshold"], 3)
        # it is over when nothing waits any more
        PG.psql("UPDATE transactions SET status = 'failed' WHERE channel = 'stuck'")
        wait_notice("stuck", "queue_age", "resolved")

    def test_webhook_refusing_gets_it_again(self):
        HB.settings["alerts"] = alerts_settings(HOOK.url + "/status/503")
        HB.reload()
        try:
            for _ in range(4):
                self.assertEqual(post("/later").status, 502)
            harness.wait_until(lambda: "alerts.webhook did not take an alert (it answered HTTP "
                               "503)" in HB.log_text(), timeout=15, what="the refusal logged")
            self.assertEqual(notices("later"), [])
        finally:
            HB.settings["alerts"] = alerts_settings(HOOK.url + "/hook")
            HB.reload()
        n = wait_notice("later", "failure_rate", "firing")
        self.assertEqual(n["value"], 1.0)

    def test_two_processes_send_one_notice(self):
        other = HB.clone(name="hibus2")
        other.start()
        try:
            for _ in range(4):
                self.assertEqual(post("/twice").status, 502)
            wait_notice("twice", "failure_rate", "firing")
            time.sleep(3)  # both have looked several times
            self.assertEqual(len(notices("twice", "failure_rate", "firing")), 1)
        finally:
            other.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
