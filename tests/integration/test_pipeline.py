"""The pipeline end to end: client -> hibus (reader, mapping, quality, writer) -> the
DHIS2 simulator, and what hibus answers and records.

Every test starts with an empty simulator and asserts the exact values it stored
(GET /admin/values), the answer the client got and the transaction hibus logged.
"""

import json
import threading
import unittest

import harness
from harness import DHIS2Sim, dv, sort_values

PASSWORD = "lmis-pipeline-secret"
AUTH = ("lmis-national", PASSWORD)

FULL_QUALITY = ["non_negative", "required_measures",
                {"rule": "balance", "tolerance": 0, "action": "reject"}, "stockout_days",
                {"rule": "value_ceiling", "max": 100000, "action": "warn"}]

BAD_DE = "AAAAAAAAAAA"  # a well-formed UID the simulator does not have

PG = SIM = SIM37 = TARGET = HB = None


def pchan(name, path, routes, reader="lmis-report", mapping="itest", quality=FULL_QUALITY,
          writer="dhis2-datavalueset", content_types=("application/json",), unmapped="reject",
          json_match=None, priority=10):
    match = {"path": path, "methods": ["POST"], "content_types": list(content_types)}
    if json_match:
        match["json"] = dict(json_match)
    return {"name": name, "priority": priority, "match": match,
            "allow": {"roles": ["lmis"]}, "mode": "sync",
            "transform": {"reader": reader, "mapping": mapping, "quality": list(quality),
                          "writer": writer},
            "unmapped": unmapped, "routes": list(routes)}


def mapping_files():
    itest = harness.mapping_doc(org_units={"FAC-0042": "cLq0tI1jksz"},
                                org_units_csv="itest-facilities.csv")
    items = {k: {"data_element": v} for k, v in DHIS2Sim.DATA_ELEMENTS.items()}
    items["ZINC20"] = BAD_DE  # the plain-UID form
    conflict = harness.mapping_doc(items=items)
    # AMOX250's losses and adjustments by reason, to data elements of their own
    reasons = dict(harness.mapping_doc(), items_csv="reasons-items.csv")
    reasons_csv = "item,measure,data_element,category_option_combo\n" + "".join(
        "AMOX250,%s:%s,%s,%s\n" % (m, r, DHIS2Sim.BY_REASON_DATA_ELEMENTS[m],
                                   DHIS2Sim.REASONS[r])
        for m, r in [("losses", "Expired"), ("losses", "Damaged"),
                     ("adjustments", "Found in store")])
    return {
        "mappings/reasons.yaml": reasons,
        "mappings/reasons-items.csv": reasons_csv,
        "mappings/itest.yaml": itest,
        "mappings/itest-facilities.csv": "code,uid\nFAC-0043,p88r7fYkDc9\nFAC-0100,kVncLVPFjTT\n",
        "mappings/conflict.yaml": conflict,
    }


def setUpModule():
    global PG, SIM, SIM37, TARGET, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    SIM37 = harness.DHIS2Sim(version="2.37").start()
    TARGET = harness.Target().start()
    opts = {"dry_run": False, "import_strategy": "CREATE_AND_UPDATE"}
    bad_token = harness.sim_route(SIM, auth=None)
    bad_token["auth"] = {"token": "d2pat_notTheSimulatorsToken000000000000000000001234"}
    channels = [
        pchan("lmis-stock", "/lmis/stock-reports", [harness.sim_route(SIM, dhis2=opts)],
              json_match={"program": "essential-medicines"}),
        pchan("lmis-stock-fp", "/lmis/stock-reports",
              [{"name": "fp-archive", "mediator": "http", "url": TARGET.url + "/fp",
                "primary": True, "timeout": "5s", "body": "transformed",
                "writer": "dhis2-datavalueset"}],
              json_match={"program": "family-planning"}),
        pchan("lmis-adx-out", "/lmis/adx-out", [harness.sim_route(SIM, writer="adx")]),
        pchan("lmis-skip", "/lmis/skip", [harness.sim_route(SIM)], unmapped="skip"),
        pchan("lmis-reasons", "/lmis/reasons", [harness.sim_route(SIM)], mapping="reasons",
              unmapped="skip"),
        pchan("lmis-warn", "/lmis/warn", [harness.sim_route(SIM)],
              quality=["non_negative", {"rule": "value_ceiling", "max": 1000, "action": "warn"}]),
        pchan("lmis-conflict", "/lmis/conflict", [harness.sim_route(SIM)], mapping="conflict"),
        pchan("lmis-v237", "/lmis/v237", [harness.sim_route(SIM37)]),
        pchan("lmis-v237-conflict", "/lmis/v237-conflict", [harness.sim_route(SIM37)],
              mapping="conflict"),
        pchan("lmis-token", "/lmis/token", [harness.sim_route(SIM, auth="token")]),
        pchan("lmis-badtoken", "/lmis/badtoken", [bad_token]),
        pchan("openlmis", "/openlmis/requisitions", [harness.sim_route(SIM)],
              reader="openlmis-requisition",
              quality=["non_negative", {"rule": "balance", "tolerance": 0}]),
        pchan("dhis2json", "/dhis2/datavaluesets", [harness.sim_route(SIM)],
              reader="dhis2-json", quality=["non_negative"]),
        pchan("adx-in", "/adx/datavaluesets", [harness.sim_route(SIM)], reader="adx",
              quality=["non_negative"], content_types=("application/adx+xml",)),
        pchan("adx-adx", "/adx/to-adx", [harness.sim_route(SIM, writer="adx")], reader="adx",
              quality=["non_negative"], content_types=("application/adx+xml",)),
        pchan("dhis2json-adx", "/dhis2/to-adx", [harness.sim_route(SIM, writer="adx")],
              reader="dhis2-json", quality=["non_negative"]),
    ]
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=channels, settings={"mappings": "mappings"},
                       files=mapping_files())
    HB.start()


def tearDownModule():
    harness.stop_all(HB, SIM, SIM37, TARGET, PG)


def report(**changes):
    """The lmis-report sample as a dict, with top-level keys changed."""
    d = json.loads(harness.pipeline_data("lmis-report.json"))
    d.update(changes)
    return d


LMIS = harness.PIPELINE_SAMPLES["lmis-report.json"]["values"]


def lmis_values(items):
    """The sample's expected values for these commodity codes only."""
    des = {DHIS2Sim.DATA_ELEMENTS[i] for i in items}
    return [v for v in LMIS if v["dataElement"] in des]


class PipelineTest(harness.TestCase):

    def setUp(self):
        SIM.reset()
        SIM37.reset()
        TARGET.clear()

    # --- helpers

    def post(self, path, body, ctype="application/json", request_id=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        h = {"Content-Type": ctype}
        if request_id:
            h["X-Request-Id"] = request_id
        return HB.request("POST", path, body=body, headers=h, auth=AUTH)

    def tx_of(self, resp):
        v = resp.headers.get("x-hibus-transaction")
        self.assertIsNotNone(v, "no X-Hibus-Transaction header in %r" % (resp.headers,))
        self.assertRegex(v, r"^[0-9]+$")
        return int(v)

    def stored(self, sim=None):
        return harness.normalize_values((sim or SIM).values())

    def tx_row(self, tx):
        row = PG.row("SELECT id, channel, status, response_status, problems, error"
                     " FROM transactions WHERE id = %d" % tx)
        self.assertIsNotNone(row, "no transactions row %d" % tx)
        return row

    def attempts(self, tx):
        return PG.rows("SELECT route, attempt, url, status_code, error, details"
                       " FROM attempts WHERE transaction_id = %d ORDER BY id" % tx)

    def assertImport(self, imp, status, imported, updated=0, ignored=0, fmt="webmessage",
                     conflicts=True):
        self.assertIsInstance(imp, dict, imp)
        self.assertEqual(imp.get("status"), status, imp)
        self.assertEqual((imp.get("imported"), imp.get("updated"), imp.get("ignored"),
                          imp.get("deleted")), (imported, updated, ignored, 0), imp)
        self.assertEqual(imp.get("format"), fmt, imp)
        if conflicts:
            self.assertEqual(imp.get("conflicts"), [], imp)

    def assertDelivered(self, resp, channel, imported, updated=0, route="dhis2",
                        status="successful", sim=None, fmt="webmessage", http_status=200,
                        ignored=0):
        """A 200 answer whose single dhis2 route imported cleanly; returns (tx, body)."""
        self.assertEqual(resp.status, 200, resp.body[:2000])
        self.assertTrue(resp.headers.get("content-type", "").startswith("application/json"),
                        resp.headers)
        tx = self.tx_of(resp)
        body = resp.json()
        self.assertEqual(body.get("transaction"), tx, body)
        self.assertEqual(body.get("status"), status, body)
        self.assertEqual(body.get("request_id"), resp.headers.get("x-request-id"), body)
        self.assertEqual(len(body.get("routes") or []), 1, body)
        r0 = body["routes"][0]
        self.assertEqual(r0.get("route"), route, r0)
        self.assertEqual(r0.get("outcome"), status, r0)
        self.assertEqual(r0.get("status_code"), http_status, r0)
        self.assertImport(r0.get("import"), "SUCCESS", imported, updated, ignored, fmt=fmt)

        row = self.tx_row(tx)
        self.assertEqual(row["channel"], channel)
        self.assertEqual(row["status"], status)
        self.assertEqual(row["response_status"], 200)
        atts = self.attempts(tx)
        self.assertEqual(len(atts), 1, atts)
        a = atts[0]
        self.assertEqual(a["route"], route)
        self.assertEqual(a["status_code"], http_status)
        self.assertIsNone(a["error"])
        self.assertTrue(a["url"].startswith((sim or SIM).url + "/api/"), a["url"])
        self.assertIn("dataValueSets", a["url"])
        self.assertImport(a["details"], "SUCCESS", imported, updated, ignored, fmt=fmt)
        return tx, body

    def assertRejected(self, resp, channel):
        """A 422 rejection; nothing reached DHIS2; returns (tx, body)."""
        body = self.assertJsonError(resp, 422, "HIBUS_E_INVALID")
        self.assertEqual(body["error"], "the payload was rejected")
        problems = body.get("problems")
        self.assertIsInstance(problems, list, body)
        self.assertTrue(problems, "a rejection without problems: %r" % body)
        for p in problems:
            self.assertIsInstance(p.get("stage"), str, p)
            self.assertIsInstance(p.get("message"), str, p)
            self.assertTrue(p["message"], p)
        self.assertEqual(body["details"], [p["message"] for p in problems], body)
        tx = body.get("transaction")
        self.assertIsInstance(tx, int, body)
        if "x-hibus-transaction" in resp.headers:
            self.assertEqual(int(resp.headers["x-hibus-transaction"]), tx)
        row = self.tx_row(tx)
        self.assertEqual(row["channel"], channel)
        self.assertEqual(row["status"], "rejected")
        self.assertEqual(row["response_status"], 422)
        self.assertIsInstance(row["problems"], dict, row)
        self.assertEqual(row["problems"].get("problems"), problems)
        self.assertEqual(self.attempts(tx), [], "a rejected transaction has no attempts")
        self.assertEqual(self.stored(), [], "a rejected payload reached DHIS2")
        return tx, body

    # --- the four readers, end to end

    def test_lmis_report(self):
        r = self.post("/lmis/stock-reports", harness.pipeline_data("lmis-report.json"),
                      request_id="itest-pipeline-lmis")
        tx, body = self.assertDelivered(r, "lmis-stock", imported=24)
        self.assertEqual(body.get("request_id"), "itest-pipeline-lmis")
        self.assertEqual(body.get("warnings"), [], body)
        self.assertEqual(body.get("skipped"), [], body)
        got = self.stored()
        self.assertEqual(got, LMIS)
        # spot checks written out by hand
        self.assertIn(dv("PRIVrEScHcE", "202610", "cLq0tI1jksz", "PcAgkuk85UK", "1050"), got)
        self.assertIn(dv("YpYGky8q06j", "202610", "cLq0tI1jksz", "LjyzteI7tDK", "-5"), got)
        self.assertIn(dv("rTAGiDO5psX", "202610", "cLq0tI1jksz", "YRxjWDCECJW", "6"), got)
        # hibus tx --json shows the import summary on the attempt
        j = HB.tx_json(tx)
        self.assertEqual(j["status"], "successful")
        self.assertIsNone(j.get("problems"), j.get("problems"))
        self.assertEqual(len(j["attempts"]), 1, j["attempts"])
        self.assertImport(j["attempts"][0].get("details"), "SUCCESS", 24)

    def test_lmis_report_month_period_string(self):
        r = self.post("/lmis/stock-reports", report(period="2026-10"))
        self.assertDelivered(r, "lmis-stock", imported=24)
        self.assertEqual(self.stored(), LMIS)

    def test_openlmis_requisition(self):
        r = self.post("/openlmis/requisitions",
                      harness.pipeline_data("openlmis-requisition.json"))
        self.assertDelivered(r, "openlmis", imported=14)
        self.assertEqual(self.stored(),
                         harness.PIPELINE_SAMPLES["openlmis-requisition.json"]["values"])

    def test_dhis2_json(self):
        r = self.post("/dhis2/datavaluesets", harness.pipeline_data("dhis2-datavalueset.json"))
        self.assertDelivered(r, "dhis2json", imported=4)
        self.assertEqual(self.stored(),
                         harness.PIPELINE_SAMPLES["dhis2-datavalueset.json"]["values"])

    def test_adx_in(self):
        r = self.post("/adx/datavaluesets", harness.pipeline_data("adx.xml"),
                      ctype="application/adx+xml")
        self.assertDelivered(r, "adx-in", imported=3)
        self.assertEqual(self.stored(), harness.PIPELINE_SAMPLES["adx.xml"]["values"])

    def test_adx_multi_group_with_annotation(self):
        r = self.post("/adx/datavaluesets", harness.pipeline_data("adx-multi.xml"),
                      ctype="application/adx+xml")
        self.assertDelivered(r, "adx-in", imported=3)
        self.assertEqual(self.stored(), harness.PIPELINE_SAMPLES["adx-multi.xml"]["values"])

    def test_adx_writer_sends_no_comments(self):
        # DHIS2 reads an ADX <annotation> as the value of a text data element and
        # ignores it on numeric ones, so ADX cannot carry comments: the values
        # arrive, their comments do not (the JSON writer keeps them, see above).
        r = self.post("/adx/to-adx", harness.pipeline_data("adx-multi.xml"),
                      ctype="application/adx+xml")
        self.assertDelivered(r, "adx-adx", imported=3)
        self.assertEqual(self.stored(), [dict(v, comment=None) for v in
                                         harness.PIPELINE_SAMPLES["adx-multi.xml"]["values"]])
        SIM.reset()
        r = self.post("/dhis2/to-adx", harness.pipeline_data("dhis2-datavalueset.json"))
        self.assertDelivered(r, "dhis2json-adx", imported=4)
        self.assertEqual(self.stored(), [dict(v, comment=None) for v in
                                         harness.PIPELINE_SAMPLES["dhis2-datavalueset.json"]["values"]])

    def test_concurrent_reports(self):
        """12 clients at once, JSON and XML readers mixed, each its own period."""
        lmis_text = harness.pipeline_data("lmis-report.json", "r")
        adx_text = harness.pipeline_data("adx.xml", "r")
        jobs, want = [], []
        for m in range(1, 7):
            jobs.append(("/lmis/stock-reports", "application/json",
                         json.dumps(report(period="2025-%02d" % m))))
            want += [dict(v, period="2025%02d" % m) for v in LMIS]
            jobs.append(("/adx/datavaluesets", "application/adx+xml",
                         adx_text.replace("2026-07-01/P1M", "2024-%02d-01/P1M" % m)))
            want += [dict(v, period="2024%02d" % m)
                     for v in harness.PIPELINE_SAMPLES["adx.xml"]["values"]]
        self.assertIn('"2026-10-01"', lmis_text)
        results = [None] * len(jobs)

        def run(i, path, ctype, body):
            try:
                results[i] = self.post(path, body.encode(), ctype=ctype)
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,) + j) for i, j in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        txs = set()
        for (path, _, _), r in zip(jobs, results):
            self.assertNotIsInstance(r, Exception, r)
            self.assertEqual(r.status, 200, r.body[:500])
            self.assertEqual(r.json().get("status"), "successful", r.body[:500])
            txs.add(self.tx_of(r))
        self.assertEqual(len(txs), len(jobs))
        self.assertEqual(self.stored(), sort_values(want))
        rows = PG.rows("SELECT status, count(*) AS n FROM transactions WHERE id IN (%s)"
                       " GROUP BY status" % ",".join(map(str, txs)))
        self.assertEqual(rows, [{"status": "successful", "n": len(jobs)}])

    def test_adx_writer_route(self):
        r = self.post("/lmis/adx-out", harness.pipeline_data("lmis-report.json"))
        self.assertDelivered(r, "lmis-adx-out", imported=24)
        self.assertEqual(self.stored(), LMIS)

    # --- unmapped codes

    def unmapped_report(self):
        d = report()
        d["lines"].append({"commodity": "PARA500", "opening_balance": 40, "received": 0,
                           "consumed": 10, "losses": 0, "adjustments": 0, "stock_on_hand": 30,
                           "stockout_days": 0, "requested": 20})
        return d

    def test_unmapped_commodity_rejected(self):
        r = self.post("/lmis/stock-reports", self.unmapped_report())
        tx, body = self.assertRejected(r, "lmis-stock")
        for p in body["problems"]:
            self.assertEqual(p["stage"], "mapping", p)
            self.assertEqual(p.get("code"), "PARA500", p)
            self.assertEqual(p.get("kind"), "item", p)
            self.assertIn("PARA500", p["message"])

    def test_unmapped_facility_rejected(self):
        r = self.post("/lmis/stock-reports", report(facility="FAC-9999"))
        tx, body = self.assertRejected(r, "lmis-stock")
        self.assertEqual([(p["stage"], p.get("code"), p.get("kind")) for p in body["problems"]],
                         [("mapping", "FAC-9999", "org_unit")], body["problems"])

    def test_unmapped_commodity_skipped(self):
        r = self.post("/lmis/skip", self.unmapped_report())
        self.assertEqual(r.status, 200, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "completed_with_errors", body)
        skipped = body.get("skipped")
        self.assertIsInstance(skipped, list, body)
        self.assertTrue(skipped, body)
        for s in skipped:
            self.assertEqual(s.get("code"), "PARA500", s)
            self.assertEqual(s.get("kind"), "item", s)
        self.assertEqual(body["routes"][0].get("outcome"), "successful", body)
        self.assertImport(body["routes"][0].get("import"), "SUCCESS", 24)
        self.assertEqual(self.stored(), LMIS)
        row = self.tx_row(tx)
        self.assertEqual(row["status"], "completed_with_errors")
        self.assertEqual(row["response_status"], 200)
        self.assertEqual(row["problems"].get("skipped"), skipped, row["problems"])
        self.assertEqual(row["problems"].get("problems"), [], row["problems"])
        j = HB.tx_json(tx)
        self.assertEqual(j["problems"]["skipped"], skipped)

    def test_lmis_report_losses_by_reason(self):
        """losses_by_reason and adjustments_by_reason reach DHIS2 at the data element and
        category option combo the mapping gives each reason; a reason it does not map
        is skipped (unmapped: skip) and named; the totals stay as sent (7 lost, of which
        the reasons explain all: 4 + 2 + 1)."""
        line = {"commodity": "AMOX250", "opening_balance": 100, "received": 0,
                "consumed": 50, "losses": 7, "adjustments": -3, "stock_on_hand": 40,
                "stockout_days": 0,
                "losses_by_reason": {"Expired": 4, "Damaged": 2, "Stolen": 1},
                "adjustments_by_reason": {"Found in store": 2}}
        r = self.post("/lmis/reasons", {"facility": "FAC-0042", "period": "2026-10",
                                        "lines": [line]})
        self.assertEqual(r.status, 200, r.body[:2000])
        body = r.json()
        self.assertEqual(body.get("status"), "completed_with_errors", body)
        self.assertEqual(body["routes"][0].get("outcome"), "successful", body)
        self.assertImport(body["routes"][0].get("import"), "SUCCESS", 10)
        self.assertEqual([(s["code"], s["measure"], s["where"]) for s in body["skipped"]],
                         [("AMOX250", "losses:Stolen", "lines[0].losses_by_reason.Stolen")])
        self.assertIn('item "AMOX250" with measure "losses:Stolen" has no data element',
                      body["skipped"][0]["message"])
        ou, de = DHIS2Sim.ORG_UNITS["FAC-0042"], DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        de_loss = DHIS2Sim.BY_REASON_DATA_ELEMENTS["losses"]
        de_adj = DHIS2Sim.BY_REASON_DATA_ELEMENTS["adjustments"]
        want = [dv(de, "202610", ou, DHIS2Sim.MEASURES[m], str(line[m]))
                for m in ("opening_balance", "received", "consumed", "losses", "adjustments",
                          "stock_on_hand", "stockout_days")]
        want += [dv(de_loss, "202610", ou, DHIS2Sim.REASONS["Expired"], "4"),
                 dv(de_loss, "202610", ou, DHIS2Sim.REASONS["Damaged"], "2"),
                 dv(de_adj, "202610", ou, DHIS2Sim.REASONS["Found in store"], "2")]
        self.assertEqual(self.stored(), harness.normalize_values(want))

    # --- quality rules

    def test_balance_rule_rejects(self):
        d = report()
        d["lines"][0]["stock_on_hand"] = 1000  # 1200 + 500 - 640 - 10 + 0 = 1050
        r = self.post("/lmis/stock-reports", d)
        tx, body = self.assertRejected(r, "lmis-stock")
        self.assertEqual(len(body["problems"]), 1, body["problems"])
        p = body["problems"][0]
        self.assertEqual(p["stage"], "quality")
        self.assertEqual(p.get("rule"), "balance")
        self.assertEqual(p.get("facility"), "FAC-0042")
        self.assertEqual(p.get("item"), "AMOX250")
        vals = p.get("values")
        self.assertIsInstance(vals, dict, p)
        want = {"opening_balance": 1200, "received": 500, "consumed": 640, "losses": 10,
                "adjustments": 0, "stock_on_hand": 1000}
        self.assertEqual({k: vals.get(k) for k in want}, want, vals)
        j = HB.tx_json(tx)
        self.assertEqual(j["status"], "rejected")
        self.assertEqual(j["problems"]["problems"], body["problems"])
        self.assertEqual(j["attempts"], [])

    def test_negative_and_stockout_days_reject_every_problem(self):
        d = report()
        d["lines"][1]["consumed"] = -180        # non_negative (and the balance breaks)
        d["lines"][2]["stockout_days"] = 32     # October has 31 days
        r = self.post("/lmis/stock-reports", d)
        tx, body = self.assertRejected(r, "lmis-stock")
        rules = sorted((p.get("rule"), p.get("item")) for p in body["problems"])
        self.assertEqual(rules, [("balance", "ORS1L"), ("non_negative", "ORS1L"),
                                 ("stockout_days", "ACT-AL20")], body["problems"])

    def test_warn_rule_delivers_with_warnings(self):
        r = self.post("/lmis/warn", harness.pipeline_data("lmis-report.json"))
        tx, body = self.assertDelivered(r, "lmis-warn", imported=24)
        warnings = body.get("warnings")
        self.assertIsInstance(warnings, list, body)
        # values above 1000: AMOX250 opening_balance 1200 and stock_on_hand 1050
        self.assertEqual(sorted((w.get("rule"), w.get("item"), w.get("measure"))
                                for w in warnings),
                         [("value_ceiling", "AMOX250", "opening_balance"),
                          ("value_ceiling", "AMOX250", "stock_on_hand")], warnings)
        for w in warnings:
            self.assertEqual(w.get("stage"), "quality", w)
            self.assertEqual(w.get("facility"), "FAC-0042", w)
        self.assertEqual(self.stored(), LMIS)
        row = self.tx_row(tx)
        self.assertEqual(row["problems"].get("warnings"), warnings, row["problems"])

    # --- DHIS2's answers

    def conflict_report(self):
        d = report()
        d["lines"] = [d["lines"][0],
                      {"commodity": "ZINC20", "opening_balance": 150, "received": 0,
                       "consumed": 60, "losses": 0, "adjustments": 0, "stock_on_hand": 90,
                       "stockout_days": 2, "requested": 100}]
        return d

    def assertConflicts(self, conflicts, n_values):
        self.assertIsInstance(conflicts, list)
        self.assertTrue(conflicts, "no conflicts listed")
        for c in conflicts:
            self.assertEqual(c.get("errorCode"), "E7610", c)
            self.assertIn(BAD_DE, json.dumps(c), c)
        # one conflict per value, or deduplicated ones listing every index
        self.assertEqual(sum(len(c.get("indexes") or [0]) for c in conflicts), n_values,
                         conflicts)

    def test_import_with_conflicts(self):
        r = self.post("/lmis/conflict", self.conflict_report())
        self.assertEqual(r.status, 200, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "completed_with_errors", body)
        r0 = body["routes"][0]
        self.assertEqual(r0.get("outcome"), "completed_with_errors", r0)
        self.assertEqual(r0.get("status_code"), 409, r0)
        imp = r0.get("import")
        self.assertImport(imp, "WARNING", imported=8, ignored=8, conflicts=False)
        self.assertConflicts(imp.get("conflicts"), 8)
        self.assertEqual(self.stored(), lmis_values(["AMOX250"]))
        row = self.tx_row(tx)
        self.assertEqual(row["status"], "completed_with_errors")
        self.assertEqual(row["response_status"], 200)
        atts = self.attempts(tx)
        self.assertEqual(len(atts), 1, atts)
        self.assertEqual(atts[0]["status_code"], 409)
        self.assertImport(atts[0]["details"], "WARNING", imported=8, ignored=8, conflicts=False)
        self.assertConflicts(atts[0]["details"].get("conflicts"), 8)
        j = HB.tx_json(tx)
        self.assertEqual(j["attempts"][0]["details"]["conflicts"], imp["conflicts"])

    def test_dhis2_237_bare_summary(self):
        r = self.post("/lmis/v237", harness.pipeline_data("lmis-report.json"))
        self.assertDelivered(r, "lmis-v237", imported=24, sim=SIM37, fmt="bare")
        self.assertEqual(self.stored(SIM37), LMIS)
        self.assertEqual(self.stored(SIM), [])

    def test_dhis2_237_bare_summary_with_conflicts(self):
        r = self.post("/lmis/v237-conflict", self.conflict_report())
        self.assertEqual(r.status, 200, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "completed_with_errors", body)
        r0 = body["routes"][0]
        self.assertEqual(r0.get("outcome"), "completed_with_errors", r0)
        self.assertEqual(r0.get("status_code"), 200, r0)
        self.assertImport(r0.get("import"), "WARNING", imported=8, ignored=8, fmt="bare",
                          conflicts=False)
        self.assertConflicts(r0["import"].get("conflicts"), 8)
        self.assertEqual(self.stored(SIM37), lmis_values(["AMOX250"]))
        self.assertEqual(self.tx_row(tx)["status"], "completed_with_errors")

    def test_token_auth(self):
        r = self.post("/lmis/token", harness.pipeline_data("lmis-report.json"))
        self.assertDelivered(r, "lmis-token", imported=24)
        self.assertEqual(self.stored(), LMIS)

    def test_wrong_token_fails(self):
        r = self.post("/lmis/badtoken", harness.pipeline_data("lmis-report.json"))
        self.assertEqual(r.status, 502, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual(body.get("status"), "failed", body)
        self.assertEqual(body["routes"][0].get("outcome"), "failed", body)
        self.assertEqual(body["routes"][0].get("status_code"), 401, body)
        self.assertEqual(self.stored(), [])
        row = self.tx_row(tx)
        self.assertEqual(row["status"], "failed")
        self.assertEqual(row["response_status"], 502)
        atts = self.attempts(tx)
        self.assertEqual([(a["route"], a["status_code"]) for a in atts], [("dhis2", 401)], atts)

    def test_repost_updates_without_duplicates(self):
        payload = harness.pipeline_data("lmis-report.json")
        self.assertDelivered(self.post("/lmis/stock-reports", payload), "lmis-stock",
                             imported=24)
        # DHIS2 2.38.6+ ignores values re-sent unchanged, without a conflict, and answers
        # SUCCESS: the re-send is delivered (it used to end failed, with a 502)
        tx2, _ = self.assertDelivered(self.post("/lmis/stock-reports", payload), "lmis-stock",
                                      imported=0, updated=0, ignored=24)
        self.assertEqual(self.stored(), LMIS)
        self.assertEqual(HB.tx_json(tx2)["attempts"][0]["details"].get("ignored_without_conflict"),
                         24)
        # a changed value replaces the stored one
        d = report()
        d["lines"][0]["consumed"] = 630
        d["lines"][0]["stock_on_hand"] = 1060
        self.assertDelivered(self.post("/lmis/stock-reports", d), "lmis-stock",
                             imported=0, updated=2, ignored=22)
        want = [dict(v) for v in LMIS]
        for v in want:
            if (v["dataElement"], v["categoryOptionCombo"]) == ("PRIVrEScHcE", "LelQdVJoKer"):
                v["value"] = "630"
            if (v["dataElement"], v["categoryOptionCombo"]) == ("PRIVrEScHcE", "PcAgkuk85UK"):
                v["value"] = "1060"
        self.assertEqual(self.stored(), sort_values(want))

    # --- payloads hibus cannot read

    def test_malformed_json(self):
        r = self.post("/lmis/skip", b'{"report_id": "x", "facility": "FAC-0042", "lines": [')
        tx, body = self.assertRejected(r, "lmis-skip")
        self.assertEqual([p["stage"] for p in body["problems"]], ["reader"], body["problems"])

    def test_missing_facility(self):
        d = report()
        del d["facility"]
        r = self.post("/lmis/skip", d)
        tx, body = self.assertRejected(r, "lmis-skip")
        self.assertEqual({p["stage"] for p in body["problems"]}, {"reader"}, body["problems"])
        self.assertTrue(any("facility" in p["message"] or "facility" in (p.get("where") or "")
                            for p in body["problems"]), body["problems"])

    def test_malformed_adx(self):
        r = self.post("/adx/datavaluesets", b'<adx xmlns="urn:ihe:qrph:adx:2015"><group',
                      ctype="application/adx+xml")
        tx, body = self.assertRejected(r, "adx-in")
        self.assertEqual({p["stage"] for p in body["problems"]}, {"reader"}, body["problems"])

    # --- content-based routing

    def test_content_based_routing(self):
        # essential-medicines -> lmis-stock -> DHIS2
        r = self.post("/lmis/stock-reports", report())
        self.assertDelivered(r, "lmis-stock", imported=24)
        self.assertEqual(self.stored(), LMIS)
        self.assertEqual(TARGET.requests, [])
        SIM.reset()

        # family-planning -> lmis-stock-fp -> the archive target, transformed
        r = self.post("/lmis/stock-reports", report(program="family-planning"))
        self.assertEqual(r.status, 200, r.body[:2000])
        tx = self.tx_of(r)
        body = r.json()
        self.assertEqual([x.get("route") for x in body.get("routes", [])], ["fp-archive"], body)
        self.assertEqual(body["routes"][0].get("status_code"), 200, body)
        self.assertEqual(body.get("status"), "successful", body)
        self.assertEqual(self.tx_row(tx)["channel"], "lmis-stock-fp")
        self.assertEqual(self.stored(), [], "the family-planning report reached DHIS2")
        reqs = TARGET.requests
        self.assertEqual([(q.method, q.path) for q in reqs], [("POST", "/fp")], reqs)
        self.assertTrue((reqs[0].header("Content-Type") or "").startswith("application/json"))
        dvs = json.loads(reqs[0].body)
        self.assertEqual(dvs.get("dataSet"), DHIS2Sim.DATA_SET, dvs)
        self.assertEqual(dvs.get("period"), "202610", dvs)
        self.assertEqual(dvs.get("orgUnit"), "cLq0tI1jksz", dvs)
        got = sorted((v["dataElement"], v.get("categoryOptionCombo"), str(v["value"]))
                     for v in dvs["dataValues"])
        want = sorted((v["dataElement"], v["categoryOptionCombo"], v["value"]) for v in LMIS)
        self.assertEqual(got, want)

        # any other program: no channel
        r = self.post("/lmis/stock-reports", report(program="malaria"))
        self.assertJsonError(r, 404, "HIBUS_E_NOT_FOUND")
        self.assertEqual(self.stored(), [])
        self.assertEqual(len(TARGET.requests), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
