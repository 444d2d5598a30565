"""Changes are announced after they commit, not in the commit: no NOTIFY trigger on
the transactions table, and yet delivery workers wake at once for work queued by
their own process (in-process) and by another process (a coalesced NOTIFY
hibus_queue from a connection of its own), with the poll set far out of reach."""

import json
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
PG = TARGET = FRONT = BACK = None


def setUpModule():
    global PG, TARGET, FRONT, BACK
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    ch = harness.channel("queued", "/async", TARGET.url + "/in", mode="async")
    # FRONT only takes requests; BACK delivers, and would poll only every 10 minutes
    FRONT = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                          channels=[ch], settings={"delivery": {"workers": 0}}, name="front")
    FRONT.start()
    BACK = FRONT.clone(name="back")
    BACK.settings["delivery"] = {"workers": 2, "poll": "10m"}
    BACK.start()


def tearDownModule():
    harness.stop_all(FRONT, BACK, TARGET, PG)


def post(hb, n):
    ids = []
    for i in range(n):
        r = hb.request("POST", "/async", body=json.dumps({"n": i}).encode(), auth=AUTH,
                       headers={"Content-Type": "application/json"})
        assert r.status == 202, (r.status, r.body)
        ids.append(r.json()["id"])
    return ids


def delivered(ids):
    return PG.scalar("SELECT count(*) FROM transactions WHERE status = 'successful' AND id IN (%s)"
                     % ",".join(str(i) for i in ids)) == str(len(ids))


class AnnounceTest(harness.TestCase):

    def test_no_notify_in_commits(self):
        # the triggers that notified on every insert and status change are gone
        self.assertEqual(PG.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid ="
                                   " 'transactions'::regclass AND NOT tgisinternal"), "0")

    def test_another_process_is_woken(self):
        t0 = time.monotonic()
        ids = post(FRONT, 5)
        harness.wait_until(lambda: delivered(ids), timeout=20,
                           what="delivery by the other process")
        # far within BACK's 10-minute poll: it heard FRONT's announcement
        self.assertLess(time.monotonic() - t0, 20)

    def test_own_process_is_woken(self):
        ids = post(BACK, 5)
        harness.wait_until(lambda: delivered(ids), timeout=20, what="delivery in-process")


if __name__ == "__main__":
    unittest.main()
