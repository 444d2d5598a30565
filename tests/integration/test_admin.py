"""The admin listener: GET /metrics in Prometheus's text format with counts that match
the traffic, and the admin API (search, one transaction, re-run, channels, status,
reload) for admin users with their roles, on its own port."""

import base64
import json
import os
import re
import socket
import subprocess
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
JSON = {"Content-Type": "application/json"}
USERS = {"ana": ("admin", "ana-secret-1"), "omar": ("operator", "omar-secret-2"),
         "rita": ("read", "rita-secret-3")}
GHOST_OU = "Gh0stUnit01"

PG = SIM = TARGET = HB = None
ADMIN_PORT = None


def users_doc(extra=()):
    users = [{"id": k, "role": r, "password_hash": harness.password_hash(p)}
             for k, (r, p) in USERS.items()]
    users.append({"id": "gone", "role": "admin", "enabled": False,
                  "password_hash": harness.password_hash("gone-secret")})
    return {"users": users + list(extra)}


report = harness.stock_report


def setUpModule():
    global PG, SIM, TARGET, HB, ADMIN_PORT
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    TARGET = harness.Target().start()
    ADMIN_PORT = harness.free_port()
    stock = harness.sim_channel("stock", "/stock", SIM)
    plain = harness.channel("plain", "/plain", TARGET.url + "/archive")
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[stock, plain],
                       settings={"mappings": "mappings",
                                 "admin": {"port": ADMIN_PORT, "users": "admin-users.yaml"}},
                       files={"mappings/m.yaml": harness.mapping_doc(
                           org_units=dict(harness.DHIS2Sim.ORG_UNITS, **{"FAC-GHOST": GHOST_OU})),
                              "admin-users.yaml": users_doc()})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, SIM, PG)


def admin(method, path, user=None, body=None, headers=None):
    auth = (user, USERS[user][1]) if user in USERS else user
    return harness.http_request(ADMIN_PORT, method, path, body=body, headers=headers, auth=auth,
                                timeout=30)


def post(path, body):
    r = HB.request("POST", path, body=body, auth=AUTH, headers=JSON)
    return r, int(r.headers["x-hibus-transaction"]) if "x-hibus-transaction" in r.headers else None


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_metrics(text):
    """The exposition as {(name, frozenset(labels)): value}, checking the format as
    Prometheus reads it: every sample's family has one TYPE line before it, names and
    label pairs are well formed, values are numbers."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in types, "two TYPE lines for %s" % name
            types[name] = typ
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels = m.group(1), m.group(3) or ""
        fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert fam in types, "sample %s before its TYPE" % name
        pairs = LABEL.findall(labels)
        assert ",".join('%s="%s"' % (k, v) for k, v, _ in pairs) == labels, labels
        float(m.group(4))
        samples[(name, frozenset((k, v) for k, v, _ in pairs))] = float(m.group(4))
    return types, samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class AdminTest(harness.TestCase):

    def test_metrics_count_the_traffic(self):
        _, before = parse_metrics(admin("GET", "/metrics", "rita").body.decode())
        ok, ok_tx = post("/stock", report("FAC-0042", "2026-10"))
        self.assertEqual(ok.status, 200, ok.body)
        bad, _ = post("/stock", report("FAC-GHOST", "2026-10"))
        self.assertEqual(bad.status, 502, bad.body)
        plain, _ = post("/plain", b'{"n": 1}')
        self.assertEqual(plain.status, 200)
        nf = HB.request("POST", "/nowhere", body=b"{}", auth=AUTH, headers=JSON)
        self.assertEqual(nf.status, 404)
        r = admin("GET", "/metrics", "rita")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        types, after = parse_metrics(r.body.decode())
        for name, typ in [("hibus_http_requests_total", "counter"),
                          ("hibus_http_request_duration_seconds", "histogram"),
                          ("hibus_transactions_total", "counter"),
                          ("hibus_delivery_attempts_total", "counter"),
                          ("hibus_delivery_duration_seconds", "histogram"),
                          ("hibus_dhis2_import_values_total", "counter"),
                          ("hibus_dhis2_import_conflicts_total", "counter"),
                          ("hibus_queue_transactions", "gauge"),
                          ("hibus_queue_oldest_age_seconds", "gauge"),
                          ("hibus_db_pool_connections", "gauge"),
                          ("hibus_db_pool_waits_total", "counter"),
                          ("hibus_config_reloads_total", "counter"),
                          ("hibus_build_info", "gauge"), ("hibus_database_up", "gauge"),
                          ("process_resident_memory_bytes", "gauge")]:
            self.assertEqual(types.get(name), typ, name)

        def grew(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)
        self.assertEqual(grew("hibus_http_requests_total", channel="stock", code="200"), 1)
        self.assertEqual(grew("hibus_http_requests_total", channel="stock", code="502"), 1)
        self.assertEqual(grew("hibus_http_requests_total", channel="plain", code="200"), 1)
        self.assertEqual(grew("hibus_http_requests_total", channel="", code="404"), 1)
        self.assertEqual(grew("hibus_transactions_total", channel="stock", status="successful"), 1)
        self.assertEqual(grew("hibus_transactions_total", channel="stock", status="failed"), 1)
        self.assertEqual(grew("hibus_delivery_attempts_total", channel="stock", route="dhis2",
                              outcome="successful"), 1)
        self.assertEqual(grew("hibus_delivery_attempts_total", channel="stock", route="dhis2",
                              outcome="failed"), 1)
        # the simulator's summary for one AMOX250 line: what DHIS2 counted, and the
        # ghost org unit's conflict
        summary = HB.tx_json(ok_tx)["attempts"][0]["details"]
        self.assertEqual(grew("hibus_dhis2_import_values_total", channel="stock",
                              result="imported"), summary["imported"])
        self.assertGreater(summary["imported"], 0)
        self.assertEqual(grew("hibus_dhis2_import_conflicts_total", channel="stock"), 1)
        # a histogram: buckets never decrease, +Inf is the count
        stock = [(float(dict(k)["le"]) if dict(k)["le"] != "+Inf" else float("inf"), v)
                 for (n, k), v in after.items()
                 if n == "hibus_http_request_duration_seconds_bucket"
                 and dict(k)["channel"] == "stock"]
        stock.sort()
        self.assertEqual([v for _, v in stock], sorted(v for _, v in stock))
        self.assertEqual(stock[-1][1], value(after, "hibus_http_request_duration_seconds_count",
                                             channel="stock"))
        self.assertEqual(value(after, "hibus_database_up"), 1)
        started = value(after, "process_start_time_seconds")
        self.assertTrue(HB.started_at - 5 <= started <= HB.started_at + 5,
                        (started, HB.started_at))
        self.assertEqual(value(after, "hibus_db_pool_connections", state="max"), 4)

    def test_metrics_need_a_login_unless_public(self):
        r = admin("GET", "/metrics")
        self.assertEqual(r.status, 401)
        self.assertIn("Basic", r.headers.get("www-authenticate", ""))
        self.assertEqual(r.json()["code"], "HIBUS_E_AUTH")
        self.assertEqual(admin("GET", "/metrics", ("rita", "wrong")).status, 401)
        self.assertEqual(admin("GET", "/metrics", ("gone", "gone-secret")).status, 401)
        # a client of the main listener is not an admin user
        self.assertEqual(admin("GET", "/metrics", AUTH).status, 401)

    def test_search_and_one_transaction(self):
        r, tx = post("/stock", report("FAC-0043", "2026-09"))
        self.assertEqual(r.status, 200, r.body)
        page = admin("GET", "/api/transactions?facility=FAC-0043&period=202609", "rita").json()
        self.assertEqual([t["id"] for t in page["transactions"]], [tx])
        self.assertIsNone(page["next_before"])
        # the same search as hibus ls
        cli = json.loads(HB.cli("ls", "-c", HB.config_path, "--json", "--facility", "FAC-0043",
                                "--period", "202609").stdout)
        self.assertEqual(cli, page)
        two = admin("GET", "/api/transactions?limit=1", "rita").json()
        self.assertEqual(len(two["transactions"]), 1)
        self.assertEqual(two["next_before"], two["transactions"][0]["id"])
        for q, code in [("status=faild", 422), ("limit=0", 400), ("limit=x", 400),
                        ("before=-1", 400), ("conflicts=yes", 400), ("since=yesterdy", 422),
                        ("before=99999999", 404)]:
            got = admin("GET", "/api/transactions?" + q, "rita")
            self.assertEqual(got.status, code, (q, got.body))
            self.assertIn("error", got.json())
        # bodies for operators and admins only
        full = admin("GET", "/api/transactions/%d" % tx, "omar").json()
        self.assertIn("FAC-0043", full["request_body"])
        self.assertIn("response_excerpt", full["attempts"][0])
        seen = admin("GET", "/api/transactions/%d" % tx, "rita").json()
        self.assertNotIn("request_body", seen)
        self.assertNotIn("response_body", seen)
        self.assertNotIn("response_excerpt", seen["attempts"][0])
        self.assertEqual(seen["status"], "successful")
        self.assertEqual(seen["attempts"][0]["details"]["imported"],
                         full["attempts"][0]["details"]["imported"])
        self.assertEqual(admin("GET", "/api/transactions/99999999", "rita").status, 404)

    def test_roles(self):
        r, tx = post("/stock", report("FAC-GHOST", "2026-08"))
        self.assertEqual(r.status, 502, r.body)
        # read may not re-run, operator may
        denied = admin("POST", "/api/transactions/%d/rerun" % tx, "rita")
        self.assertEqual(denied.status, 403, denied.body)
        self.assertIn("operator", denied.json()["details"][0])
        ok = admin("POST", "/api/transactions/%d/rerun" % tx, "omar")
        self.assertEqual(ok.status, 200, ok.body)
        self.assertEqual(ok.json()["queued"], 1)
        # a delivery worker takes it up again: a second attempt, failed as the first
        harness.wait_until(lambda: PG.count("attempts", "transaction_id = %d" % tx) == 2 and
                           PG.scalar("SELECT status FROM transactions WHERE id = %d" % tx)
                           == "failed", timeout=20, what="the rerun's attempt")
        # by filter, with the rules of hibus rerun
        for body, code in [(b"", 400), (b"[1]", 400), (b'{"rate": 5}', 422),
                           (b'{"status": "faild"}', 422), (b'{"channel": 3}', 422),
                           (b'{"channel": "stock", "colour": "red"}', 422)]:
            got = admin("POST", "/api/rerun", "omar", body=body, headers=JSON)
            self.assertEqual(got.status, code, (body, got.body))
        got = admin("POST", "/api/rerun", "omar", headers=JSON,
                    body=b'{"channel": "stock", "status": "failed", "rate": 50}')
        self.assertEqual(got.status, 200, got.body)
        self.assertGreaterEqual(got.json()["queued"], 1)
        self.assertEqual(got.json()["rate_per_second"], 50)
        # a page of another site cannot act with a signed-in browser's password
        for h in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                  {"Origin": "null"}):
            got = admin("POST", "/api/transactions/%d/rerun" % tx, "omar", headers=h)
            self.assertEqual(got.status, 403, (h, got.body))
            self.assertEqual(got.json()["error"], "cross-site request refused")
        same = {"Origin": "http://127.0.0.1:%d" % ADMIN_PORT, "Sec-Fetch-Site": "same-origin"}
        self.assertEqual(admin("POST", "/api/transactions/%d/rerun" % tx, "omar",
                               headers=same).status, 200)
        # reload is the admin's
        self.assertEqual(admin("POST", "/api/reload", "omar").status, 403)
        gen = admin("GET", "/api/status", "rita").json()["config_generation"]
        self.assertEqual(admin("POST", "/api/reload", "ana").status, 202)
        harness.wait_until(
            lambda: admin("GET", "/api/status", "rita").json()["config_generation"] > gen,
            timeout=10, what="the reload to apply")
        # methods and paths
        self.assertEqual(admin("GET", "/api/reload", "ana").status, 405)
        self.assertEqual(admin("POST", "/api/status", "ana").status, 405)
        self.assertEqual(admin("GET", "/api/nothing", "ana").status, 404)
        self.assertEqual(admin("GET", "/api/transactions/0", "ana").status, 404)

    def test_channels_and_status(self):
        post("/plain", b'{"n": 2}')
        st = admin("GET", "/api/status", "rita").json()
        self.assertEqual((st["database"]["up"], st["channels"]), (True, 2))
        self.assertTrue(st["version"])
        chans = {c["name"]: c for c in admin("GET", "/api/channels", "rita").json()["channels"]}
        self.assertEqual(set(chans), {"stock", "plain"})
        p = chans["plain"]
        self.assertEqual((p["mode"], p["routes"]), ("sync", ["archive"]))
        self.assertGreaterEqual(p["last_hour"]["finished"], 1)
        self.assertIsNotNone(p["last_success"])
        self.assertEqual(p["queue"]["queued"], 0)

    def test_unmapped_codes(self):
        txs = []
        for body in (report("FAC-NOWHERE", "2026-10"), report("FAC-NOWHERE", "2026-11"),
                     json.dumps({"facility": "FAC-0042", "period": "2026-10", "lines": [
                         {"commodity": "NOPE-ITEM", "stock_on_hand": 1}]}).encode()):
            r, tx = post("/stock", body)
            self.assertEqual(r.status, 422, r.body)
            txs.append(tx)
        got = admin("GET", "/api/unmapped", "rita").json()
        self.assertEqual(got["days"], 7)
        rows = {(c["channel"], c["kind"], c["code"]): c for c in got["codes"]}
        ou = rows[("stock", "org_unit", "FAC-NOWHERE")]
        self.assertEqual((ou["transactions"], ou["last_transaction"]), (2, txs[1]))
        self.assertRegex(ou["last_seen"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(rows[("stock", "item", "NOPE-ITEM")]["transactions"], 1)
        self.assertNotIn(("stock", "org_unit", "FAC-0042"), rows)
        self.assertEqual(admin("GET", "/api/unmapped?days=0", "rita").status, 400)
        # hibus check --remote lists them too (drift between payloads and mappings)
        r = HB.cli("check", "-c", HB.config_path, "--remote")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no mapping maps:", r.stdout)
        self.assertIn('channel stock: org_unit "FAC-NOWHERE" in 2 transactions, the last %d ('
                      % txs[1], r.stderr)

    def test_check_remote_moved_org_unit(self):
        """Drift: DHIS2 moved FAC-0042's org unit to another district. The first
        check --remote records where each mapped org unit sits; the next one names
        the move (OrganisationUnit.path), and the one after is quiet again."""
        with open(os.path.join(harness.SOURCE_DIR, "tests", "dhis2-sim", "metadata.json")) as f:
            md = json.load(f)
        md["organisationUnits"].append({"id": "Rp268JB6Ne4", "code": "DIST-02",
                                        "name": "Other District"})
        before = os.path.join(HB.dir, "moved-before.json")
        after = os.path.join(HB.dir, "moved-after.json")
        with open(before, "w") as f:
            json.dump(md, f)
        for ou in md["organisationUnits"]:
            if ou["code"] == "FAC-0042":
                ou["parent"] = "Rp268JB6Ne4"
        with open(after, "w") as f:
            json.dump(md, f)
        sim = harness.DHIS2Sim(metadata=before, name="dhis2-sim-moved").start()
        self.addCleanup(sim.stop)
        hb = harness.Hibus(PG.url, channels=[harness.sim_channel("stock", "/stock", sim)],
                           settings={"mappings": "mappings"},
                           files={"mappings/m.yaml": harness.mapping_doc()}, name="movedcfg")
        hb.write_config()
        r = hb.cli("check", "-c", hb.config_path, "--remote")
        self.assertNotIn("was moved", r.stderr)
        self.assertIn("every mapped UID exists", r.stdout)
        sim.stop()
        sim.metadata = after
        sim.start()  # the same port: the same DHIS2 to hibus
        r = hb.cli("check", "-c", hb.config_path, "--remote")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r'org unit cLq0tI1jksz \(mapped from "FAC-0042"\) was moved in '
                         r'DHIS2: it was under /Z2bdC37H4KV at the check of \d{4}-\d\d-\d\dT'
                         r'[0-9:.]+Z, it is now under /Rp268JB6Ne4;')
        self.assertIn("1 mapped org unit moved in DHIS2 since the last check", r.stdout)
        self.assertNotIn("p88r7fYkDc9", r.stderr)
        r = hb.cli("check", "-c", hb.config_path, "--remote")
        self.assertNotIn("was moved", r.stderr)
        # the admin API tells the same (its own hibus, its own DHIS2: the simulator
        # of the module, where nothing moved since the first look records it)
        self.assertEqual(admin("GET", "/api/drift", "rita").status, 403)
        got = admin("GET", "/api/drift", "omar").json()
        self.assertEqual(len(got["dhis2"]), 1, got)
        d = got["dhis2"][0]
        self.assertEqual((d["channel"], d["route"], d["url"]), ("stock", "dhis2", SIM.url))
        self.assertEqual(d["problems"], ['mapping "m": org unit Gh0stUnit01 (mapped from '
                                         '"FAC-GHOST") does not exist in DHIS2'])
        self.assertEqual(d["moved"], [])
        self.assertEqual(got["unmapped_days"], 30)
        self.assertNotIn("moves_not_compared", got)

    def test_hostile_requests(self):
        # an event stream per database session, at most 8: the ninth is refused, and a
        # closed one makes room again
        auth = base64.b64encode(b"rita:" + USERS["rita"][1].encode()).decode()
        streams = []
        try:
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", ADMIN_PORT), timeout=10)
                s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                          auth.encode() + b"\r\n\r\n")
                head = s.recv(4096)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                self.assertIn(b"text/event-stream", head)
                streams.append(s)
            ninth = admin("GET", "/api/events", "rita")
            self.assertEqual(ninth.status, 503, ninth.body)
            self.assertEqual(ninth.headers.get("retry-after"), "10")
        finally:
            for s in streams:
                s.close()
        harness.wait_until(lambda: self._stream_opens(auth), timeout=10,
                           what="room for a stream once the others closed")
        # values that are not text, or numbers past any range, are refused plainly
        for q, code in [("channel=%FF%FE", 422), ("limit=99999999999999999999", 400),
                        ("before=99999999999999999999", 400), ("facility=%C3%28", 422)]:
            got = admin("GET", "/api/transactions?" + q, "rita")
            self.assertEqual(got.status, code, (q, got.body))
        big = admin("POST", "/api/rerun", "omar", headers=JSON, body=b"{" + b" " * 70000 + b"}")
        self.assertEqual(big.status, 413)
        self.assertEqual(admin("GET", "/../etc/passwd", "rita").status, 404)
        self.assertEqual(admin("GET", "/api/transactions/1x", "rita").status, 404)

    @staticmethod
    def _stream_opens(auth):
        with socket.create_connection(("127.0.0.1", ADMIN_PORT), timeout=10) as s:
            s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                      auth.encode() + b"\r\n\r\n")
            return s.recv(4096).startswith(b"HTTP/1.1 200")

    def test_prometheus_rules_use_what_hibus_exports(self):
        rules = os.path.join(harness.SOURCE_DIR, "packaging", "prometheus")
        for args in (["check", "rules", "hibus-alerts.yml"],
                     ["test", "rules", "hibus-alerts.test.yml"]):
            r = subprocess.run(["promtool"] + args, cwd=rules, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(rules, "hibus-alerts.yml")) as f:
            text = f.read()
        types, _ = parse_metrics(admin("GET", "/metrics", "rita").body.decode())
        named = set(re.findall(r"\b(hibus_[a-z0-9_]+)", text))
        self.assertGreaterEqual(len(named), 6, named)
        self.assertEqual(sorted(n for n in named if n not in types), [])

    def test_users_follow_a_reload(self):
        self.assertEqual(admin("GET", "/api/status", ("zoe", "zoe-secret-4")).status, 401)
        HB.files["admin-users.yaml"] = users_doc(
            [{"id": "zoe", "role": "read", "password_hash": harness.password_hash("zoe-secret-4")}])
        gen = admin("GET", "/api/status", "rita").json()["config_generation"]
        HB.reload()
        harness.wait_until(
            lambda: admin("GET", "/api/status", "rita").json()["config_generation"] > gen,
            timeout=10, what="the reload")
        self.assertEqual(admin("GET", "/api/status", ("zoe", "zoe-secret-4")).status, 200)
        _, m = parse_metrics(admin("GET", "/metrics", "rita").body.decode())
        self.assertGreaterEqual(value(m, "hibus_config_reloads_total", result="applied"), 1)
        self.assertEqual(value(m, "hibus_config_last_reload_successful"), 1)
        self.assertEqual(admin("GET", "/api/status", "rita").json()["last_reload"]["result"],
                         "applied")
        # a users file with a problem: the reload is refused, the users stay
        HB.files["admin-users.yaml"] = {"users": [{"id": "zoe", "role": "chief"}]}
        try:
            HB.reload("reload refused")
            st = admin("GET", "/api/status", ("zoe", "zoe-secret-4")).json()
            self.assertEqual(st["last_reload"]["result"], "refused")
            self.assertRegex(st["last_reload"]["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            _, m = parse_metrics(admin("GET", "/metrics", "rita").body.decode())
            self.assertEqual(value(m, "hibus_config_last_reload_successful"), 0)
        finally:
            HB.files["admin-users.yaml"] = users_doc()
            HB.reload()


if __name__ == "__main__":
    unittest.main(verbosity=2)
