"""limits.request_cpu over real sockets: a payload whose transform needs more CPU than
the limit is answered 422 with a problem that says so, stored as rejected and never
sent; a reload that raises the limit lets the same payload through, in sync and async
channels alike."""

import json
import unittest

import harness

PW = "lmis-cpu-secret"
AUTH = ("lmis-national", PW)
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None


def big_dataset(n=20000):
    values = [{"dataElement": "DE%d" % i, "value": str(i)} for i in range(n)]
    return json.dumps({"period": "202401", "orgUnit": "OU1", "dataValues": values}).encode()


def tchan(name, path, mode):
    # dhis2-json read and checked, then forwarded as received (no mapping needed)
    c = harness.channel(name, path, TARGET.url + "/" + name,
                        transform={"reader": "dhis2-json"})
    c["mode"] = mode
    return c


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(
        PG.url,
        clients=[harness.client("lmis-national", ["lmis"], PW)],
        channels=[tchan("cpu-sync", "/cpu/sync", "sync"), tchan("cpu-async", "/cpu/async", "async")],
        settings={"limits": {"request_cpu": "1ms"},
                  "delivery": {"workers": 1, "poll": "200ms"}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


class RequestCpuTest(harness.TestCase):

    def reload(self):
        HB.reload()

    def test_over_the_limit_then_raised(self):
        body = big_dataset()
        for path in ("/cpu/sync", "/cpu/async"):
            with self.subTest(path=path):
                sent_before = len(TARGET.requests)
                r = HB.request("POST", path, body=body, headers=JSON, auth=AUTH)
                self.assertEqual(r.status, 422, r.body)
                answer = json.loads(r.body)
                self.assertEqual(answer["code"], "HIBUS_E_INVALID")
                self.assertEqual(len(answer["problems"]), 1, answer["problems"])
                problem = answer["problems"][0]
                self.assertEqual(problem["stage"], "reader")
                self.assertIn("took more than limits.request_cpu (1ms) of CPU time",
                              problem["message"])
                self.assertIn("smaller parts", problem["message"])
                self.assertEqual(answer["request_id"], r.headers["x-request-id"])
                # stored, with the body, as rejected; nothing sent
                tx = answer["transaction"]
                self.assertEqual(PG.scalar("SELECT status FROM transactions WHERE id = %d" % tx),
                                 "rejected")
                self.assertEqual(
                    PG.scalar("SELECT octet_length(request_body) FROM transactions "
                              "WHERE id = %d" % tx), str(len(body)))
                self.assertEqual(len(TARGET.requests), sent_before)

        HB.settings["limits"]["request_cpu"] = "1m"
        self.reload()
        r = HB.request("POST", "/cpu/sync", body=body, headers=JSON, auth=AUTH)
        self.assertEqual(r.status, 200, r.body[:500])
        self.assertEqual(TARGET.requests[-1].body, body)
        r = HB.request("POST", "/cpu/async", body=body, headers=JSON, auth=AUTH)
        self.assertEqual(r.status, 202, r.body[:500])
        tx = json.loads(r.body)["id"]
        harness.wait_until(
            lambda: PG.scalar("SELECT status FROM transactions WHERE id = %d" % tx)
            == "successful", timeout=30, what="the async delivery")
        self.assertEqual(TARGET.requests[-1].path, "/cpu-async")


if __name__ == "__main__":
    unittest.main()
