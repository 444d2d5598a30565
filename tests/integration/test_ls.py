"""`hibus ls` lists and searches the transaction log, newest first, with filters and
pages; `hibus tail` and `hibus rerun` refuse a status that does not exist instead of
matching nothing."""

import json
import subprocess
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
OTHER = ("lmis-district", "district-secret")
JSON = {"Content-Type": "application/json"}
SIM_OU = harness.DHIS2Sim.ORG_UNITS
# a facility the mapping sends to an org unit DHIS2 does not have: import conflicts
GHOST_OU = "Gh0stUnit01"

PG = SIM = TARGET = HB = None
TX = {}  # name -> (id, request id)


report = harness.stock_report


def setUpModule():
    global PG, SIM, TARGET, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    TARGET = harness.Target().start()
    sync = harness.sim_channel("stock-sync", "/stock/sync", SIM)
    asyn = dict(sync, name="stock-async", mode="async",
                match=dict(sync["match"], path="/stock/async"))
    plain = harness.channel("plain", "/plain", TARGET.url + "/archive")
    org_units = dict(SIM_OU, **{"FAC-GHOST": GHOST_OU})
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD),
                                        harness.client("lmis-district", ["lmis"], OTHER[1])],
                       channels=[sync, asyn, plain],
                       settings={"delivery": {"workers": 1, "poll": "200ms"},
                                 "mappings": "mappings"},
                       files={"mappings/m.yaml": harness.mapping_doc(org_units=org_units)})
    HB.start()
    # oldest first; each is finished before the next is posted
    posts = [("sync42", "/stock/sync", report("FAC-0042", "2026-10"), AUTH),
             ("plain", "/plain", b'{"n": 1}', AUTH),
             ("async43", "/stock/async", report("FAC-0043", "2026-09"), OTHER),
             ("ghost", "/stock/sync", report("FAC-GHOST", "2026-10"), AUTH),
             ("rejected", "/stock/async", b'{"facility": "FAC-0042"}', AUTH),
             ("sync42b", "/stock/sync", report("FAC-0042", "2026-11"), AUTH)]
    for name, path, body, auth in posts:
        r = HB.request("POST", path, body=body, auth=auth, headers=JSON)
        assert r.status in (200, 202, 422, 502), (name, r.status, r.body)
        tx = int(r.headers["x-hibus-transaction"])
        TX[name] = (tx, r.headers["x-request-id"])
        harness.wait_until(lambda: PG.scalar("SELECT status FROM transactions WHERE id = %d"
                                             % tx) not in ("queued", "processing"),
                           timeout=20, what="transaction %s to finish" % name)


def tearDownModule():
    harness.stop_all(HB, TARGET, SIM, PG)


def ls(*args):
    return HB.cli("ls", "-c", HB.config_path, *args)


def ls_json(*args):
    r = ls("--json", *args)
    if r.returncode != 0:
        raise AssertionError("hibus ls %s failed (%d): %s" % (args, r.returncode, r.stderr))
    return json.loads(r.stdout)


def ids(page):
    return [t["id"] for t in page["transactions"]]


def tx(name):
    return TX[name][0]


class LsTest(harness.TestCase):

    def test_newest_first_with_fields(self):
        page = ls_json()
        self.assertEqual(ids(page), sorted((t for t, _ in TX.values()), reverse=True))
        self.assertIsNone(page["next_before"])
        by_id = {t["id"]: t for t in page["transactions"]}
        t = by_id[tx("sync42")]
        self.assertEqual((t["channel"], t["client"], t["mode"], t["status"], t["response_status"],
                          t["facility"], t["period"], t["request_id"], t["attempts"],
                          t["conflicts"]),
                         ("stock-sync", "lmis-national", "sync", "successful", 200,
                          "FAC-0042", "202610", TX["sync42"][1], 1, 0))
        self.assertRegex(t["received_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertGreater(t["duration_ms"], 0)
        a = by_id[tx("async43")]
        self.assertEqual((a["mode"], a["client"], a["facility"], a["period"], a["status"]),
                         ("async", "lmis-district", "FAC-0043", "202609", "successful"))
        p = by_id[tx("plain")]
        self.assertEqual((p["facility"], p["period"], p["status"]), (None, None, "successful"))
        g = by_id[tx("ghost")]
        self.assertGreater(g["conflicts"], 0, g)
        self.assertIn(g["status"], ("completed_with_errors", "failed"), g)
        self.assertEqual(by_id[tx("rejected")]["status"], "rejected")

    def test_filters(self):
        cases = [
            (["--channel", "stock-sync"], ["sync42b", "ghost", "sync42"]),
            (["--client", "lmis-district"], ["async43"]),
            (["--status", "rejected"], ["rejected"]),
            (["--status", "rejected,completed_with_errors,failed"], ["rejected", "ghost"]),
            (["--facility", "FAC-0042"], ["sync42b", "sync42"]),
            # an org unit id stands for the codes the mapping sends to it
            (["--facility", SIM_OU["FAC-0043"]], ["async43"]),
            (["--facility", GHOST_OU], ["ghost"]),
            (["--facility", "FAC-NOPE"], []),
            (["--facility", "FAC-0042", "--period", "202610"], ["sync42"]),
            (["--period", "202610"], ["ghost", "sync42"]),
            (["--request-id", TX["plain"][1]], ["plain"]),
            (["--conflicts"], ["ghost"]),
            (["--channel", "stock-sync", "--client", "lmis-district"], []),
            # values are data, never SQL
            (["--channel", "stock-sync' OR 'a' = 'a"], []),
            (["--facility", "FAC-0042') OR true --"], []),
            (["--request-id", "x\\' OR true --"], []),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                self.assertEqual(ids(ls_json(*args)), [tx(n) for n in want])

    def test_time_range(self):
        at = PG.scalar("SELECT received_at::text FROM transactions WHERE id = %d" % tx("ghost"))
        self.assertEqual(ids(ls_json("--since", at)), [tx("sync42b"), tx("rejected"),
                                                       tx("ghost")])
        self.assertEqual(ids(ls_json("--until", at)), [tx("async43"), tx("plain"), tx("sync42")])
        self.assertEqual(ids(ls_json("--since", "2000-01-01", "--until", "2000-02-01")), [])

    def test_pages(self):
        every = ids(ls_json())
        seen, before = [], None
        for _ in range(10):
            page = ls_json("--limit", "4", *(["--before", str(before)] if before else []))
            self.assertLessEqual(len(page["transactions"]), 4)
            seen += ids(page)
            before = page["next_before"]
            if before is None:
                break
            self.assertEqual(before, seen[-1])
        self.assertEqual(seen, every)
        # filters hold across pages
        first = ls_json("--channel", "stock-sync", "--limit", "1")
        self.assertEqual(ids(first), [tx("sync42b")])
        rest = ls_json("--channel", "stock-sync", "--before", str(first["next_before"]))
        self.assertEqual(ids(rest), [tx("ghost"), tx("sync42")])

    def test_text(self):
        r = ls("--limit", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["RECEIVED", "ID", "CHANNEL", "CLIENT", "STATUS",
                                            "CODE", "DURATION", "FACILITY", "PERIOD"])
        row = lines[1].split()
        self.assertEqual((int(row[1]), row[2], row[3], row[4], row[5], row[7], row[8]),
                         (tx("sync42b"), "stock-sync", "lmis-national", "successful", "200",
                          "FAC-0042", "202611"))
        self.assertEqual(len(lines), 4, r.stdout)
        self.assertEqual(lines[3], "more: add --before %d for the next page" % tx("rejected"))
        r = ls("--channel", "no-such-channel")
        self.assertEqual((r.returncode, r.stdout), (0, "no transactions match\n"))

    def test_bad_input_refused(self):
        cases = [
            (["--status", "faild"], "\"faild\" is not a transaction status"),
            (["--status", "failed,"], "\"\" is not a transaction status"),
            (["--since", "yesterdy"], "yesterdy"),
            (["--before", "99999999"], "does not exist"),
            (["--before", "x"], "--before expects a transaction id"),
            (["--limit", "0"], "--limit expects a number of transactions from 1 to 1000"),
            (["--limit", "1001"], "--limit expects"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = ls(*args)
                self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
                self.assertIn(msg, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_tail_and_rerun_refuse_unknown_status(self):
        t0 = time.monotonic()
        try:
            r = HB.cli("tail", "-c", HB.config_path, "--status", "faild", timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("hibus tail --status faild waited instead of refusing")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("\"faild\" is not a transaction status; one of queued, processing, "
                      "successful, completed, completed_with_errors, failed, rejected", r.stderr)
        r = HB.cli("rerun", "-c", HB.config_path, "--status", "complete")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("\"complete\" is not a transaction status", r.stderr)
        # a list of known ones is accepted by rerun: only the rejected one matches, and a
        # rejected report is re-queued, then rejected again
        r = HB.cli("rerun", "-c", HB.config_path, "--status", "rejected,failed",
                   "--channel", "stock-async")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("re-queued 1 transaction", r.stdout)
        harness.wait_until(lambda: PG.scalar("SELECT status FROM transactions WHERE id = %d"
                                             % tx("rejected")) == "rejected",
                           timeout=20, what="the rerun to end")


if __name__ == "__main__":
    unittest.main(verbosity=2)
