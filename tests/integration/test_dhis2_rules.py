"""hibus against DHIS2's and OpenLMIS's own rules, as real deployments meet them
(issue 7), end to end: client -> hibus -> the DHIS2 simulator in the version mode
whose rules matter, and what hibus answers, stores and shows.

Each test names the rule it checks and where it comes from; the simulator's own
README cites the dhis2-core classes behind each of its rules."""

import json
import unittest

import harness
from harness import DHIS2Sim, dv, sort_values

PASSWORD = "lmis-rules-secret"
AUTH = ("lmis-rules", PASSWORD)

PG = SIM = SIM36 = SIM37 = SIM371 = SIM41 = HB = None

# tests/dhis2-sim/metadata.json: data elements beyond the stock ones
OPD, STAFF = "DeOpdVisits", "DeStaffTrnd"     # zeroIsSignificant false
REMARKS, NOTES = "DeRemarks01", "DeSupNotes1"  # TEXT, LONG_TEXT
FUNDED_DS = "DsLmisFund1"                      # attribute category combo FUNDING
AOC_GOV, AOC_DONOR = "AocGov00001", "AocDonor001"
V2_FACILITY = "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce"
V2_ORDERABLE = "d602d0c6-4052-456c-8ccd-61b4ad77bece"
V2_PERIOD = "516ac930-0d28-49f5-a178-64764e22b236"

OU = DHIS2Sim.ORG_UNITS["FAC-0042"]
M = DHIS2Sim.MEASURES

# OpenLMIS demo reasons (openlmis-stockmanagement demo data; see
# tests/data/readers/openlmis-requisition.demo.json)
TRANSFER_IN = "e3fc3cf3-da18-44b0-a220-77c985202e06"
DAMAGE = "5b09202e-b8a7-4f77-9e0e-8156f8efc613"
EXPIRED = "3e7940db-49a5-492f-a4eb-75acb981dd2b"
REASONS = [
    {"id": TRANSFER_IN, "name": "Transfer In", "reasonType": "CREDIT",
     "reasonCategory": "TRANSFER", "isFreeTextAllowed": False, "hidden": False},
    {"id": DAMAGE, "name": "Damage", "reasonType": "DEBIT", "reasonCategory": "ADJUSTMENT",
     "isFreeTextAllowed": False, "hidden": False},
    {"id": EXPIRED, "name": "Expired", "reasonType": "DEBIT", "reasonCategory": "ADJUSTMENT",
     "isFreeTextAllowed": False, "hidden": False},
]


def chan(name, path, routes, reader="dhis2-json", mapping="rules", ctype="application/json",
         unmapped="reject", quality=("non_negative",), writer="dhis2-datavalueset", **transform):
    t = {"reader": reader, "mapping": mapping, "quality": list(quality), "writer": writer}
    t.update(transform)
    return {"name": name, "priority": 10,
            "match": {"path": path, "methods": ["POST"], "content_types": [ctype]},
            "allow": {"roles": ["lmis"]}, "mode": "sync", "transform": t,
            "unmapped": unmapped, "routes": list(routes)}


def mappings():
    rules = harness.mapping_doc()
    # no data_set: the source's own dataSet (a UID) goes through
    passthrough = harness.mapping_doc(data_set=None)
    # the source's attribute option combo codes, translated
    aocs = harness.mapping_doc()
    aocs["attribute_option_combos"] = {"DEFAULT": DHIS2Sim.DEFAULT_AOC}
    # the simulator's other data elements: zeros, text, a funded data set
    extra = {"OPD": {"data_element": OPD, "measures": {}, "value_type": "INTEGER_ZERO_OR_POSITIVE"},
             "STAFF": {"data_element": STAFF, "measures": {}, "value_type": "NUMBER"},
             "REMARKS": {"data_element": REMARKS, "measures": {}, "value_type": "TEXT"},
             "NOTES": {"data_element": NOTES, "measures": {}, "value_type": "LONG_TEXT"}}
    rules["items"].update(extra)
    funded = harness.mapping_doc(data_set=FUNDED_DS)
    funded["items"].update(extra)
    funded["attribute_option_combos"] = {"GOV": AOC_GOV, "FUNDING=DONOR": AOC_DONOR}
    anyperiod = harness.mapping_doc(period_type=None)
    # an OpenLMIS v2 requisition: facility, orderable and period by UUID
    v2 = harness.mapping_doc(org_units={V2_FACILITY: OU},
                             items={V2_ORDERABLE: DHIS2Sim.DATA_ELEMENTS["AMOX250"]})
    v2["periods"] = {V2_PERIOD: "2026-08"}
    # org units by DHIS2 code: DHIS2 is told orgUnitIdScheme=CODE
    by_code = harness.mapping_doc(org_units={"FAC-0042": "FAC-0042", "FAC-0043": "FAC-0043"})
    by_code["id_schemes"] = {"org_unit": "CODE"}
    return {"mappings/rules.yaml": rules, "mappings/passthrough.yaml": passthrough,
            "mappings/aocs.yaml": aocs, "mappings/bycode.yaml": by_code,
            "mappings/funded.yaml": funded, "mappings/anyperiod.yaml": anyperiod,
            "mappings/v2.yaml": v2}


def setUpModule():
    global PG, SIM, SIM36, SIM37, SIM371, SIM41, HB
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    SIM36 = harness.DHIS2Sim(version="2.36").start()
    SIM37 = harness.DHIS2Sim(version="2.37").start()
    SIM371 = harness.DHIS2Sim(version="2.37.1").start()
    SIM41 = harness.DHIS2Sim(version="2.41").start()
    channels = [
        chan("json", "/json", [harness.sim_route(SIM)]),
        chan("json36", "/json36", [harness.sim_route(SIM36)]),
        chan("json37", "/json37", [harness.sim_route(SIM37)]),
        chan("adx36", "/adx36", [harness.sim_route(SIM36, writer="adx")]),
        chan("adx371", "/adx371", [harness.sim_route(SIM371, writer="adx")]),
        chan("funded", "/funded", [harness.sim_route(SIM)], mapping="funded"),
        chan("adx-funded", "/adx-funded", [harness.sim_route(SIM)], mapping="funded",
             reader="adx", ctype="application/adx+xml"),
        chan("adx-funded-adx", "/adx-funded-adx", [harness.sim_route(SIM, writer="adx")],
             mapping="funded", reader="adx", ctype="application/adx+xml"),
        chan("anyperiod", "/anyperiod", [harness.sim_route(SIM)], mapping="anyperiod"),
        chan("json41", "/json41", [harness.sim_route(SIM41)]),
        chan("lmis", "/lmis", [harness.sim_route(SIM)], reader="lmis-report"),
        chan("lmis37", "/lmis37", [harness.sim_route(SIM37)], reader="lmis-report"),
        chan("passthrough", "/passthrough", [harness.sim_route(SIM)], mapping="passthrough"),
        chan("aocs", "/aocs", [harness.sim_route(SIM)], mapping="aocs", unmapped="skip"),
        chan("bycode", "/bycode", [harness.sim_route(SIM)], mapping="bycode"),
        chan("csv", "/csv", [harness.sim_route(SIM)], reader="dhis2-csv",
             ctype="application/csv"),
        chan("requisition", "/requisition", [harness.sim_route(SIM)],
             reader="openlmis-requisition",
             quality=["non_negative", {"rule": "balance", "tolerance": 0}]),
        chan("requisition-v2", "/requisition-v2", [harness.sim_route(SIM)],
             reader="openlmis-requisition", mapping="v2"),
        chan("requisition-names", "/requisition-names", [harness.sim_route(SIM)],
             reader="openlmis-requisition", losses={"reasons": ["Expired"]}),
    ]
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-rules", ["lmis"], PASSWORD)],
                       channels=channels, settings={"mappings": "mappings"},
                       files=mappings())
    HB.start()


def tearDownModule():
    harness.stop_all(HB, SIM, SIM36, SIM37, SIM371, SIM41, PG)


def dataset(values, **top):
    d = {"period": "202608", "orgUnit": "FAC-0042"}
    d.update(top)
    d["dataValues"] = values
    return d


def requisition(adjustments, total, beginning=100, received=50, consumed=30, reasons=REASONS):
    soh = beginning + received - consumed + total
    return {
        "id": "6167e65c-6f56-4aeb-bff5-fdfe84e01a21",
        "status": "APPROVED",
        "facility": {"id": "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce", "code": "FAC-0042"},
        "processingPeriod": {"id": "c9287c65-67fa-4958-adb6-52069f2b1379", "name": "Aug2026",
                             "startDate": "2026-08-01", "endDate": "2026-08-31"},
        "stockAdjustmentReasons": reasons,
        "requisitionLineItems": [{
            "id": "8c8026b8-0ae8-4adb-b2ca-bfb0dfb030a5",
            "orderable": {"id": "d602d0c6-4052-456c-8ccd-61b4ad77bece",
                          "productCode": "AMOX250"},
            "beginningBalance": beginning, "totalReceivedQuantity": received,
            "totalConsumedQuantity": consumed, "totalLossesAndAdjustments": total,
            "stockAdjustments": [
                {"id": "120557a7-1354-47b5-9579-8717324a317%d" % i, "reasonId": r,
                 "quantity": q} for i, (r, q) in enumerate(adjustments)],
            "totalStockoutDays": 0, "stockOnHand": soh, "requestedQuantity": 80,
            "skipped": False}],
    }


class RulesTest(harness.TestCase):

    def setUp(self):
        for s in (SIM, SIM36, SIM37, SIM371, SIM41):
            s.reset()

    def post(self, path, body, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        return HB.request("POST", path, body=body, headers={"Content-Type": ctype}, auth=AUTH)

    def stored(self, sim=None):
        return harness.normalize_values((sim or SIM).values())

    def outcome(self, r, status="successful"):
        self.assertEqual(r.status, 200 if status != "failed" else 502, r.body[:2000])
        body = r.json()
        self.assertEqual(body.get("status"), status, body)
        return body

    # --- defect 1: values DHIS2 ignores without a conflict are no error

    def test_zeros_of_insignificant_data_elements(self):
        # zeroIsSignificant false: DHIS2 skips the zero, no conflict, SUCCESS. 2.36
        # counts it ignored (and before the fix a report of nothing but such zeros
        # ended failed); later versions count it nowhere.
        payload = dataset([{"dataElement": "OPD", "value": "0"},
                           {"dataElement": "STAFF", "value": "0"},
                           {"dataElement": "AMOX250", "categoryOptionCombo": "consumed",
                            "value": "0"}])
        for path, sim, ignored in (("/json36", SIM36, 2), ("/json", SIM, 0)):
            body = self.outcome(self.post(path, payload))
            imp = body["routes"][0]["import"]
            self.assertEqual((imp["status"], imp["imported"], imp["ignored"], imp["conflicts"]),
                             ("SUCCESS", 1, ignored, []), imp)
            # the zero of the data element whose zeros are significant is stored
            self.assertEqual([v["dataElement"] for v in self.stored(sim)],
                             [DHIS2Sim.DATA_ELEMENTS["AMOX250"]])
        only_zeros = dataset([{"dataElement": "OPD", "value": "0"}])
        body = self.outcome(self.post("/json36", only_zeros))
        self.assertEqual(body["routes"][0]["import"]["ignored_without_conflict"], 1, body)

    def test_adx_answered_in_xml(self):
        # 2.36 answers an ADX import in XML whatever is accepted; 2.37.0-2.37.2 only in
        # XML (406 to a client that accepts JSON alone)
        payload = dataset([{"dataElement": "AMOX250", "categoryOptionCombo": "consumed",
                            "value": "5"},
                           {"dataElement": "ORS1L", "categoryOptionCombo": "consumed",
                            "value": "x"}])
        for path, sim in (("/adx36", SIM36), ("/adx371", SIM371)):
            body = self.outcome(self.post(path, payload), "completed_with_errors")
            imp = body["routes"][0]["import"]
            self.assertEqual((imp["imported"], imp["ignored"], len(imp["conflicts"])), (1, 1, 1),
                             imp)
            self.assertEqual(len(self.stored(sim)), 1, path)

    def test_rerun_of_a_delivered_report_is_successful(self):
        r = self.post("/json", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7"}]))
        self.outcome(r)
        tx = int(r.headers["x-hibus-transaction"])
        out = HB.cli("rerun", "-c", HB.config_path, str(tx))
        self.assertEqual(out.returncode, 0, out.stderr)
        harness.wait_until(lambda: PG.count("attempts", "transaction_id = %d" % tx) == 2,
                           timeout=30, what="the rerun's attempt")
        harness.wait_until(lambda: PG.scalar("SELECT status FROM transactions WHERE id = %d"
                                             % tx) == "successful", timeout=30,
                           what="the rerun to end")
        last = HB.tx_json(tx)["attempts"][-1]["details"]
        self.assertEqual((last["status"], last["ignored"], last["ignored_without_conflict"]),
                         ("SUCCESS", 1, 1), last)

    # --- defect 7: the spellings DHIS2 accepts, normalised before writing

    def test_period_spellings_are_normalised(self):
        # no set-level period: DHIS2 would file every value under it
        payload = dataset([
            {"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7",
             "period": "2026-08"},
            {"dataElement": "ORS1L", "categoryOptionCombo": "consumed", "value": "8",
             "period": "2026-07"}])
        del payload["period"]
        r = self.post("/json", payload)
        self.outcome(r)
        pe = {v["dataElement"]: v["period"] for v in self.stored()}
        self.assertEqual(pe, {DHIS2Sim.DATA_ELEMENTS["AMOX250"]: "202608",
                              DHIS2Sim.DATA_ELEMENTS["ORS1L"]: "202607"})

    # --- defect 3: the source's dataSet and completeDate reach DHIS2 together

    def test_pass_through_keeps_data_set(self):
        r = self.post("/passthrough", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7"}],
            dataSet=DHIS2Sim.DATA_SET, completeDate="2026-09-03"))
        body = self.outcome(r)
        # DHIS2 registers the completion only when the payload names the data set
        self.assertEqual(body["routes"][0]["import"].get("data_set_complete"), "2026-09-03",
                         body)
        tx = int(r.headers["x-hibus-transaction"])
        out = HB.cli("tx", str(tx), "-c", HB.config_path).stdout
        self.assertIn("data set registered complete: 2026-09-03", out)
        self.assertEqual(len(self.stored()), 1)

    # --- defect 2: the source's attribute option combo is not dropped

    def test_source_attribute_option_combo_is_translated(self):
        r = self.post("/aocs", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7",
              "attributeOptionCombo": "DEFAULT"},
             {"dataElement": "ORS1L", "categoryOptionCombo": "consumed", "value": "8",
              "attributeOptionCombo": "NOT_IN_TABLE"}]))
        body = self.outcome(r, "completed_with_errors")
        self.assertEqual([s.get("code") for s in body.get("skipped")], ["NOT_IN_TABLE"], body)
        self.assertEqual(self.stored(), [dv(DHIS2Sim.DATA_ELEMENTS["AMOX250"], "202608", OU,
                                            M["consumed"], "7", aoc=DHIS2Sim.DEFAULT_AOC)])

    def test_source_attribute_option_combo_code_without_table_is_refused(self):
        r = self.post("/json", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7"}],
            attributeOptionCombo="DONOR"))
        body = self.assertJsonError(r, 422, "HIBUS_E_INVALID")
        kinds = [p.get("kind") for p in body["problems"]]
        self.assertEqual(kinds, ["attribute_option_combo"], body)
        self.assertEqual(self.stored(), [])

    def test_funding_mechanism_reaches_dhis2(self):
        # dhis2-json: per-value combos named in the source's codes
        r = self.post("/funded", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7",
              "attributeOptionCombo": "GOV"},
             {"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "9",
              "attributeOptionCombo": "FUNDING=DONOR"}], dataSet="LMIS_FUNDED",
            completeDate="2026-09-02"))
        self.outcome(r)
        de = DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        self.assertEqual(self.stored(), sort_values([
            dv(de, "202608", OU, M["consumed"], "7", aoc=AOC_GOV),
            dv(de, "202608", OU, M["consumed"], "9", aoc=AOC_DONOR)]))

    def test_adx_group_categories_and_text_annotation(self):
        adx = ('<adx xmlns="urn:ihe:qrph:adx:2015" exported="2026-09-01T00:00:00Z">'
               '<group dataSet="LMIS_FUNDED" orgUnit="FAC-0042" period="2026-08-01/P1M" '
               'FUNDING="DONOR">'
               '<dataValue dataElement="AMOX250" categoryOptionCombo="consumed" value="12">'
               '<annotation>ignored on a number</annotation></dataValue>'
               '<dataValue dataElement="REMARKS" value="0">'
               '<annotation>fridge broken &amp; repaired</annotation></dataValue>'
               '</group></adx>')
        want = sort_values([
            dv(DHIS2Sim.DATA_ELEMENTS["AMOX250"], "202608", OU, M["consumed"], "12",
               aoc=AOC_DONOR),
            dv(REMARKS, "202608", OU, DHIS2Sim.DEFAULT_COC, "fridge broken & repaired",
               aoc=AOC_DONOR)])
        for path in ("/adx-funded", "/adx-funded-adx"):
            SIM.reset()
            self.outcome(self.post(path, adx, ctype="application/adx+xml"))
            self.assertEqual(self.stored(), want, path)

    def test_adx_annotation_on_numeric_item_is_dropped(self):
        adx = ('<adx xmlns="urn:ihe:qrph:adx:2015" exported="2026-09-01T00:00:00Z">'
               '<group dataSet="LMIS_FUNDED" orgUnit="FAC-0042" period="2026-08-01/P1M">'
               '<dataValue dataElement="ZINC20" categoryOptionCombo="consumed" value="1">'
               '<annotation>text?</annotation></dataValue></group></adx>')
        # harness.mapping_doc declares INTEGER for the stock items: accepted, dropped
        self.outcome(self.post("/adx-funded", adx, ctype="application/adx+xml"))
        self.assertEqual([v["value"] for v in self.stored()], ["1"])

    def test_big_integer_keeps_its_text(self):
        # DHIS2 reads `value` as text: a number beyond 64 bits keeps its digits
        body = b'{"period":"202608","orgUnit":"FAC-0042","dataValues":[' \
               b'{"dataElement":"NOTES","value":99999999999999999999}]}'
        self.outcome(self.post("/json", body))
        self.assertIn("99999999999999999999", [v["value"] for v in self.stored()])

    def test_period_types_dhis2_has(self):
        de = DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        values = [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed",
                   "value": str(i + 1), "period": pe}
                  for i, pe in enumerate(["2024WedW5", "2024SunW01", "2025NovS1", "2025NovQ1",
                                          "2024AprilS2", "2025Nov", "2024-03-05"])]
        payload = dataset(values)
        del payload["period"]
        self.outcome(self.post("/anyperiod", payload))
        got = {v["period"]: v["value"] for v in self.stored() if v["dataElement"] == de}
        self.assertEqual(got, {"2024WedW5": "1", "2024SunW1": "2", "2025NovS1": "3",
                               "2025NovQ1": "4", "2024AprilS2": "5", "2025Nov": "6",
                               "20240305": "7"})

    # --- defect 4: OpenLMIS losses from a real requisition

    def test_requisition_losses_from_reason_list(self):
        # Transfer In +15 and Damage -20: losses 20, adjustments +15 (was -5, no losses)
        r = self.post("/requisition", requisition([(TRANSFER_IN, 15), (DAMAGE, 20)], -5))
        self.outcome(r)
        got = {v["categoryOptionCombo"]: v["value"] for v in self.stored()}
        self.assertEqual(got[M["losses"]], "20", got)
        self.assertEqual(got[M["adjustments"]], "15", got)
        self.assertEqual(got[M["stock_on_hand"]], "115", got)

    def test_requisition_losses_by_reason_name(self):
        # transform.losses: { reasons: [Expired] }: Damage is then an adjustment
        r = self.post("/requisition-names",
                      requisition([(DAMAGE, 4), (EXPIRED, 6), (TRANSFER_IN, 1)], -9))
        self.outcome(r)
        got = {v["categoryOptionCombo"]: v["value"] for v in self.stored()}
        self.assertEqual((got[M["losses"]], got[M["adjustments"]]), ("6", "-3"), got)

    def test_requisition_v2_references(self):
        # v2 (requisitionV2.json): facility, processingPeriod, orderable as {id, href}
        req = requisition([(TRANSFER_IN, 15), (DAMAGE, 20)], -5)
        req["facility"] = {"id": V2_FACILITY, "href": "https://openlmis/api/facilities/x"}
        req["processingPeriod"] = {"id": V2_PERIOD, "href": "https://openlmis/api/periods/x"}
        req["requisitionLineItems"][0]["orderable"] = {"id": V2_ORDERABLE, "versionNumber": 1}
        self.outcome(self.post("/requisition-v2", req))
        got = {v["categoryOptionCombo"]: (v["period"], v["value"]) for v in self.stored()}
        self.assertEqual(got[M["losses"]], ("202608", "20"), got)
        self.assertEqual(got[M["adjustments"]], ("202608", "15"), got)

    def test_requisition_unknown_reason_is_a_problem(self):
        r = self.post("/requisition", requisition([("0000dead-beef-4000-8000-000000000000", 3)],
                                                   -3))
        body = self.assertJsonError(r, 422, "HIBUS_E_INVALID")
        text = json.dumps(body["problems"])
        self.assertIn("0000dead-beef-4000-8000-000000000000", text)
        self.assertEqual(self.stored(), [])

    # --- the dhis2-csv reader

    def test_csv_with_and_without_header(self):
        de, coc = DHIS2Sim.DATA_ELEMENTS, DHIS2Sim.MEASURES
        rows = ('AMOX250,202608,FAC-0042,consumed,,12,,,"counted, twice",false\r\n'
                "ORS1L,202608,FAC-0042,stock_on_hand,,30\r\n")
        header = ("dataelement,period,orgunit,categoryoptioncombo,attributeoptioncombo,value,"
                  "storedby,lastupdated,comment,followup\r\n")
        want = sort_values([
            dv(de["AMOX250"], "202608", OU, coc["consumed"], "12", comment="counted, twice"),
            dv(de["ORS1L"], "202608", OU, coc["stock_on_hand"], "30")])
        for text in (header + rows, rows):
            SIM.reset()
            self.outcome(self.post("/csv", text, ctype="application/csv"))
            self.assertEqual(self.stored(), want)

    # --- per-object id schemes

    def test_org_units_by_code(self):
        r = self.post("/bycode", dataset(
            [{"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7"}]))
        self.outcome(r)
        tx = int(r.headers["x-hibus-transaction"])
        url = PG.scalar("SELECT url FROM attempts WHERE transaction_id = %d" % tx)
        self.assertIn("orgUnitIdScheme=CODE", url)
        self.assertEqual([v["orgUnit"] for v in self.stored()], [OU])

    # --- defect 8: what newer DHIS2 adds to the summary (rejectedIndexes from 2.39.2,
    # 2.40.1 and 2.41) is kept and shown

    def test_rejected_indexes_and_description_are_shown(self):
        r = self.post("/json41", dataset([
            {"dataElement": "AMOX250", "categoryOptionCombo": "consumed", "value": "7"},
            {"dataElement": "ORS1L", "categoryOptionCombo": "consumed", "value": "many"}]))
        body = self.outcome(r, "completed_with_errors")
        imp = body["routes"][0]["import"]
        self.assertEqual(imp.get("rejected_indexes"), [1], imp)
        self.assertTrue(imp.get("description"), imp)
        tx = int(r.headers["x-hibus-transaction"])
        out = HB.cli("tx", str(tx), "-c", HB.config_path).stdout
        self.assertIn("rejected values (0-based positions in what hibus sent): 1", out)
        self.assertIn("DHIS2 said: " + imp["description"], out)


if __name__ == "__main__":
    unittest.main()
