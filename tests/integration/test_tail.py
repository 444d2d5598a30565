"""`hibus tail` follows transactions live (announced changes read by id), with filters."""

import re
import time
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[
        harness.channel("lmis-stock", "/lmis/stock-reports", TARGET.url + "/stock"),
        harness.channel("lmis-down", "/lmis/down",
                        "http://127.0.0.1:%d/stock" % harness.free_port()),
    ])
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def post(path, expect):
    r = HB.request("POST", path, body=b'{"tail": true}', auth=AUTH, headers=JSON)
    assert r.status == expect, "POST %s: expected %d, got %d %r" % (path, expect, r.status, r.body)
    rid = r.headers["x-request-id"]
    tx = r.headers.get("x-hibus-transaction") or PG.scalar(
        "SELECT id FROM transactions WHERE request_id = '%s'" % rid)
    assert tx, "no transaction for %s" % rid
    return int(tx)


def mentions(tx):
    """Does a line show transaction tx: a whitespace-separated token that is the id
    (optionally written tx=ID, id=ID or #ID), not a digit inside "5.3ms"?"""
    pat = re.compile(r"(?:^|\s)(?:tx=|id=|#)?%d(?=\s|$)" % tx)
    return lambda line: bool(pat.search(line))


def wait_live(tail, path, expect, status):
    """tail may need a moment to LISTEN: post until one of our transactions shows up."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tx = post(path, expect)
        if tail.wait_for_line(lambda ln: mentions(tx)(ln) and status in ln, timeout=2):
            return
        if tail.proc.poll() is not None:
            break
    raise AssertionError("hibus tail never showed a transaction (exit %s); stdout:\n%s\n"
                         "stderr:\n%s" % (tail.proc.poll(), "\n".join(tail.lines),
                                          tail.stderr_text()))


class TailTest(harness.TestCase):

    def test_follows_live(self):
        tail = HB.popen("tail", "-c", HB.config_path)
        try:
            wait_live(tail, "/lmis/stock-reports", 200, "successful")
            start = len(tail.lines)
            tx = post("/lmis/stock-reports", 200)
            line = tail.wait_for_line(lambda ln: mentions(tx)(ln) and "successful" in ln,
                                      timeout=20, start=start)
            self.assertIsNotNone(line, "no 'successful' line for transaction %d within 20s;"
                                 " got:\n%s" % (tx, "\n".join(tail.lines[start:])))
            self.assertIn("lmis-stock", line)
            self.assertIn("lmis-national", line)
            self.assertRegex(line, r"(?:^|\s)200(?=\s|$)", "no HTTP code in %r" % line)
            self.assertIsNone(tail.proc.poll(), "tail exited")
        finally:
            tail.stop()

    def test_status_filter(self):
        tail = HB.popen("tail", "-c", HB.config_path, "--status", "failed")
        try:
            wait_live(tail, "/lmis/down", 502, "failed")
            start = len(tail.lines)
            ok = post("/lmis/stock-reports", 200)
            bad = post("/lmis/down", 502)
            # bad is the sentinel: ok's row was final (committed before its 200) before bad
            # was posted, tail handles notifications one by one in commit order, so once
            # bad's line is out, any line tail would ever print for ok is out too
            line = tail.wait_for_line(mentions(bad), timeout=20, start=start)
            self.assertIsNotNone(line, "failed transaction %d not shown; got:\n%s"
                                 % (bad, "\n".join(tail.lines[start:])))
            self.assertIn("failed", line)
            self.assertIn("lmis-down", line)
            shown = tail.lines[start:]
            self.assertFalse([ln for ln in shown if mentions(ok)(ln)],
                             "successful transaction %d shown with --status failed:\n%s"
                             % (ok, "\n".join(shown)))
            tx_lines = [ln for ln in tail.lines if "lmis-" in ln]
            self.assertTrue(all("failed" in ln for ln in tx_lines), "\n".join(tx_lines))
        finally:
            tail.stop()

    def test_rerun_shows(self):
        # a finished transaction put back in the queue by `hibus rerun` (another
        # process) shows again, up to its new end
        bad = post("/lmis/down", 502)
        tail = HB.popen("tail", "-c", HB.config_path, "--channel", "lmis-down")
        try:
            wait_live(tail, "/lmis/down", 502, "failed")
            start = len(tail.lines)
            HB.cli("rerun", "-c", HB.config_path, str(bad))
            line = tail.wait_for_line(lambda ln: mentions(bad)(ln), timeout=20, start=start)
            self.assertIsNotNone(line, "rerun of %d not shown; got:\n%s"
                                 % (bad, "\n".join(tail.lines[start:])))
            self.assertIn("lmis-down", line)
        finally:
            tail.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
