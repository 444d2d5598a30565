#!/usr/bin/env python3
"""Integration test of the DHIS2 simulator (tests/dhis2-sim), standard library only.

Each test starts its own dhis2-sim on a free port with the fixture metadata, talks
HTTP to it and stops it with SIGTERM in tearDown (also when the test failed),
checking that it exits 0 without sanitizer reports.

Environment (set by ctest):
  HIBUS_DHIS2_SIM   the dhis2-sim binary
  HIBUS_SOURCE_DIR  the source tree (for tests/dhis2-sim/metadata.json)
  HIBUS_BUILD_DIR   the build tree (unused here)
"""

import base64
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HIBUS_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
SIM_BIN = os.environ.get("HIBUS_DHIS2_SIM") or os.path.join(
    os.environ.get("HIBUS_BUILD_DIR", os.path.join(SOURCE_DIR, "build")),
    "tests", "dhis2-sim", "dhis2-sim")
METADATA_PATH = os.path.join(SOURCE_DIR, "tests", "dhis2-sim", "metadata.json")
with open(METADATA_PATH) as f:
    METADATA = json.load(f)

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

BASIC = "Basic " + base64.b64encode(b"admin:district").decode()
TOKEN = "ApiToken " + METADATA["tokens"][0]

DS = "uRfFkKfeb3Q"              # LMIS_MONTHLY
OU = "cLq0tI1jksz"              # FAC-0042
OU2 = "p88r7fYkDc9"             # FAC-0043
DE_AMOX = "PRIVrEScHcE"         # AMOX250
DE_ORS = "YpYGky8q06j"          # ORS1L
COC_DEFAULT = "MSc0sorvCNq"
COC_CONSUMED = "LelQdVJoKer"
COC_SOH = "PcAgkuk85UK"
AOC_DEFAULT = "pafMuhXXF9W"


def fixture_values():
    """Every (data element, non-default COC) of the fixture for FAC-0042, January 2024."""
    values = []
    n = 0
    for de in METADATA["dataElements"]:
        for coc in METADATA["categoryOptionCombos"]:
            if coc["name"] == "default":
                continue
            n += 1
            values.append({"dataElement": de["id"], "categoryOptionCombo": coc["id"],
                           "value": str(n * 10)})
    return values


def fixture_set():
    return {"dataSet": DS, "completeDate": "2024-02-05", "period": "202401", "orgUnit": OU,
            "dataValues": fixture_values()}


class Sim:
    """A running dhis2-sim; stop() sends SIGTERM and returns (exit code, stderr)."""

    def __init__(self, *extra):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [SIM_BIN, "--port", "0", "--metadata", METADATA_PATH, "--quiet", *extra],
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if "listening on" not in line:
            self.stop()
            raise RuntimeError("dhis2-sim did not start: %r" % line)
        self.port = int(line.rsplit(":", 1)[1])

    def request(self, method, path, body=None, ctype=None, auth=BASIC, headers=None, timeout=10):
        """Returns (status, headers dict, parsed JSON body or raw text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if auth:
                h["Authorization"] = auth
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                ctype = ctype or "application/json"
            if ctype:
                h["Content-Type"] = ctype
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            raw = resp.read().decode()
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post(self, body, path="/api/dataValueSets", ctype=None, **kw):
        return self.request("POST", path, body=body, ctype=ctype, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def values(self):
        status, _, data = self.request("GET", "/admin/values", auth=None)
        assert status == 200, status
        return data

    def stats(self):
        return self.request("GET", "/admin/stats", auth=None)[2]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.seek(0)
        text = self.err.read().decode(errors="replace")
        self.err.close()
        return self.proc.returncode, text


def adx(groups, root_attrs=""):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<adx xmlns="urn:ihe:qrph:adx:2015" exported="2024-02-05T08:00:00Z"%s>%s</adx>'
            % (root_attrs, "".join(groups)))


class SimTestCase(unittest.TestCase):
    sim_args = ()

    def setUp(self):
        self.sim = Sim(*self.sim_args)

    def tearDown(self):
        rc, err = self.sim.stop()
        self.assertEqual(rc, 0, "dhis2-sim exit code %s, stderr:\n%s" % (rc, err))
        for marker in SANITIZER_MARKERS:
            self.assertNotIn(marker, err, err)

    def assertConflict(self, summary, code, indexes, prop, obj=None):
        matches = [c for c in summary["conflicts"] if c.get("errorCode") == code]
        self.assertEqual(len(matches), 1, summary["conflicts"])
        c = matches[0]
        self.assertEqual(c["indexes"], indexes, c)
        self.assertEqual(c["property"], prop, c)
        self.assertIn("value", c)
        self.assertIn("objects", c)
        if obj is not None:
            self.assertEqual(c["object"], obj, c)
            self.assertIn(obj, c["value"], c)


class AuthTest(SimTestCase):
    def test_unauthenticated_and_wrong_credentials_get_401(self):
        for auth in (None, "Basic " + base64.b64encode(b"admin:wrong").decode(),
                     "Basic !!!notbase64", "ApiToken d2pat_nope", "Bearer abc"):
            status, headers, body = self.sim.get("/api/system/info", auth=auth)
            self.assertEqual(status, 401, auth)
            self.assertEqual(headers.get("www-authenticate"), 'Basic realm="DHIS2"')
            self.assertEqual(body["httpStatus"], "Unauthorized")
            self.assertEqual(body["httpStatusCode"], 401)
            self.assertEqual(body["status"], "ERROR")
            self.assertTrue(body["message"])

    def test_basic_and_api_token_work(self):
        other = "Basic " + base64.b64encode(b"hibus:Hibus-sim-2026").decode()
        for auth in (BASIC, other, TOKEN):
            status, _, body = self.sim.get("/api/system/info", auth=auth)
            self.assertEqual(status, 200, auth)
            self.assertEqual(body["version"], "2.40.4")
            self.assertIn("serverDate", body)


class JsonImportTest(SimTestCase):
    def test_import_then_reimport_counts_updated(self):
        payload = fixture_set()
        n = len(payload["dataValues"])
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["httpStatus"], "OK")
        self.assertEqual(body["status"], "OK")
        self.assertEqual(body["message"], "Import was successful.")
        s = body["response"]
        self.assertEqual(s["responseType"], "ImportSummary")
        self.assertEqual(s["status"], "SUCCESS")
        self.assertEqual(s["importCount"], {"imported": n, "updated": 0, "ignored": 0, "deleted": 0})
        self.assertEqual(s["conflicts"], [])
        self.assertEqual(s["rejectedIndexes"], [])
        self.assertEqual(s["dataSetComplete"], "2024-02-05")
        self.assertEqual(s["importOptions"]["importStrategy"], "CREATE_AND_UPDATE")
        self.assertFalse(s["importOptions"]["dryRun"])

        status, _, body = self.sim.post(payload, auth=TOKEN)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["response"]["importCount"],
                         {"imported": 0, "updated": n, "ignored": 0, "deleted": 0})

        expected = sorted(
            ({"dataElement": v["dataElement"], "period": "202401", "orgUnit": OU,
              "categoryOptionCombo": v["categoryOptionCombo"], "attributeOptionCombo": AOC_DEFAULT,
              "value": v["value"], "comment": None} for v in payload["dataValues"]),
            key=lambda v: (v["dataElement"], v["period"], v["orgUnit"],
                           v["categoryOptionCombo"], v["attributeOptionCombo"]))
        self.assertEqual(self.sim.values(), expected)

        status, _, body = self.sim.get("/api/dataValueSets?dataSet=%s&period=202401&orgUnit=%s"
                                       % (DS, OU))
        self.assertEqual(status, 200)
        self.assertEqual(len(body["dataValues"]), n)
        self.assertEqual(body["dataValues"][0]["storedBy"], "admin")
        status, _, body = self.sim.get("/api/dataValueSets?dataSet=%s&period=202402&orgUnit=%s"
                                       % (DS, OU))
        self.assertEqual(body["dataValues"], [])

    def test_numbers_default_coc_and_comment(self):
        payload = {"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "value": 7, "comment": "hibus"}]}
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.sim.values(), [
            {"dataElement": DE_AMOX, "period": "202401", "orgUnit": OU,
             "categoryOptionCombo": COC_DEFAULT, "attributeOptionCombo": AOC_DEFAULT,
             "value": "7", "comment": "hibus"}])

    BAD = {"dataSet": DS, "period": "202401", "orgUnit": OU, "dataValues": [
        {"dataElement": DE_AMOX, "categoryOptionCombo": COC_SOH, "value": "5"},        # 0 ok
        {"dataElement": "xxxxxxxxxxx", "value": "1"},                                 # 1 E7610
        {"dataElement": DE_AMOX, "orgUnit": "nOsuchOrgU1", "value": "1"},             # 2 E7612
        {"dataElement": DE_AMOX, "categoryOptionCombo": "nOsuchCoc01", "value": "1"},  # 3 E7613
        {"dataElement": DE_ORS, "value": "4.5"},                                      # 4 E7619
        {"dataElement": "xxxxxxxxxxx", "value": "2"},                                 # 5 E7610
        {"dataElement": DE_ORS, "categoryOptionCombo": COC_SOH},                      # 6 E7618
        {"dataElement": DE_ORS, "period": "202413", "value": "1"},                    # 7 E7611
        {"dataElement": DE_ORS, "attributeOptionCombo": "nOsuchAoc01", "value": "1"},  # 8 E7615
    ]}

    def check_bad_summary(self, s):
        self.assertEqual(s["responseType"], "ImportSummary")
        self.assertEqual(s["status"], "WARNING")
        self.assertEqual(s["importCount"], {"imported": 1, "updated": 0, "ignored": 8, "deleted": 0})
        self.assertEqual(s["rejectedIndexes"], [1, 2, 3, 4, 5, 6, 7, 8])
        self.assertConflict(s, "E7610", [1, 5], "dataElement", "xxxxxxxxxxx")
        self.assertConflict(s, "E7612", [2], "orgUnit", "nOsuchOrgU1")
        self.assertConflict(s, "E7613", [3], "categoryOptionCombo", "nOsuchCoc01")
        self.assertConflict(s, "E7619", [4], "value", "4.5")
        self.assertConflict(s, "E7618", [6], "value", DE_ORS)
        self.assertConflict(s, "E7611", [7], "period", "202413")
        self.assertConflict(s, "E7615", [8], "attributeOptionCombo", "nOsuchAoc01")
        self.assertEqual(len(s["conflicts"]), 7)
        self.assertEqual(len(self.sim.values()), 1)

    def test_conflicts_give_warning_and_409(self):
        status, headers, body = self.sim.post(self.BAD)
        self.assertEqual(status, 409, body)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(body["httpStatus"], "Conflict")
        self.assertEqual(body["httpStatusCode"], 409)
        self.assertEqual(body["status"], "WARNING")
        self.assertEqual(body["message"],
                         "One more conflicts encountered, please check import summary.")
        self.check_bad_summary(body["response"])

    def test_pinned_api_37_gets_bare_summary_and_200(self):
        status, _, body = self.sim.post(self.BAD, path="/api/37/dataValueSets")
        self.assertEqual(status, 200, body)
        self.assertNotIn("httpStatus", body)
        self.check_bad_summary(body)
        # /api/40/ keeps the envelope.
        status, _, body = self.sim.post(self.BAD, path="/api/40/dataValueSets")
        self.assertEqual(status, 409)
        self.assertEqual(body["response"]["importCount"]["updated"], 1)

    def test_everything_ignored_is_error(self):
        payload = {"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "value": "abc"}, {"dataElement": DE_ORS, "value": "-"}]}
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 409)
        self.assertEqual(body["status"], "ERROR")
        self.assertEqual(body["message"], "An error occurred, please check import summary.")
        self.assertEqual(body["response"]["status"], "ERROR")
        self.assertEqual(body["response"]["importCount"]["ignored"], 2)
        # An unknown set-level data set rejects every value (E7600).
        payload = {"dataSet": "nOsuchDs001", "period": "202401", "orgUnit": OU,
                   "dataValues": [{"dataElement": DE_AMOX, "value": "1"}]}
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 409)
        self.assertConflict(body["response"], "E7600", [0], "dataSet", "nOsuchDs001")

    def test_periods(self):
        cases = [("2024W1", "2024W1"), ("2024W01", "2024W1"), ("2020W53", "2020W53"),
                 ("2024Q1", "2024Q1"), ("2024S2", "2024S2"), ("2024AprilS1", "2024AprilS1"),
                 ("2024", "2024"), ("2024April", "2024April"), ("202406B", "202406B"),
                 ("20240229", "20240229"), ("2024BiW1", "2024BiW1"), ("2024SunW1", "2024SunW1")]
        bad = ["2021W53", "202407B", "20230229", "2024Q5", "2024Q01", "2024M1", "24", "2024-01",
               "2099"]
        values = [{"dataElement": DE_AMOX, "period": p, "value": "1"} for p, _ in cases]
        values += [{"dataElement": DE_AMOX, "period": p, "value": "1"} for p in bad]
        status, _, body = self.sim.post({"orgUnit": OU, "dataValues": values})
        self.assertEqual(status, 409, body)
        s = body["response"]
        self.assertEqual(s["rejectedIndexes"], list(range(len(cases), len(values))), s)
        self.assertConflict(s, "E7641", [len(values) - 1], "period")   # 2099: future
        # 2024W01 is stored as 2024W1, so the second of the two is an update.
        self.assertEqual(s["importCount"]["updated"], 1)
        self.assertEqual(sorted(v["period"] for v in self.sim.values()),
                         sorted(set(c for _, c in cases)))


class StrategyTest(SimTestCase):
    def test_dry_run_stores_nothing(self):
        payload = fixture_set()
        status, _, body = self.sim.post(payload, path="/api/dataValueSets?dryRun=true")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["response"]["importOptions"]["dryRun"])
        self.assertEqual(body["response"]["importCount"]["imported"], len(payload["dataValues"]))
        self.assertEqual(self.sim.values(), [])

    def test_delete_create_update(self):
        payload = fixture_set()
        n = len(payload["dataValues"])
        self.assertEqual(self.sim.post(payload)[0], 200)

        status, _, body = self.sim.post(payload, path="/api/dataValueSets?importStrategy=CREATE")
        self.assertEqual(status, 409)
        self.assertEqual(body["response"]["importCount"]["ignored"], n)
        self.assertEqual(body["response"]["status"], "ERROR")

        status, _, body = self.sim.post(payload, path="/api/dataValueSets?importStrategy=DELETE")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["response"]["importCount"],
                         {"imported": 0, "updated": 0, "ignored": 0, "deleted": n})
        self.assertEqual(body["response"]["importOptions"]["importStrategy"], "DELETE")
        self.assertEqual(self.sim.values(), [])

        status, _, body = self.sim.post(payload, path="/api/dataValueSets?importStrategy=UPDATE")
        self.assertEqual(status, 409)
        self.assertEqual(body["response"]["importCount"]["ignored"], n)
        self.assertEqual(body["response"]["rejectedIndexes"], list(range(n)))

    def test_bad_requests(self):
        status, _, body = self.sim.post("{not json", ctype="application/json")
        self.assertEqual(status, 400)
        self.assertEqual(body["status"], "ERROR")
        status, _, body = self.sim.post("period,orgUnit", ctype="text/plain")
        self.assertEqual(status, 415)
        self.assertEqual(body["httpStatusCode"], 415)
        status, _, body = self.sim.post(fixture_set(), path="/api/dataValueSets?async=true")
        self.assertEqual(status, 409)
        self.assertIn("async", body["message"])
        status, _, body = self.sim.post(fixture_set(), path="/api/dataValueSets?idScheme=ATTRIBUTE:x")
        self.assertEqual(status, 400)
        self.assertEqual(self.sim.get("/api/nothingHere")[0], 404)
        self.assertEqual(self.sim.request("DELETE", "/api/dataValueSets")[0], 405)
        self.assertEqual(self.sim.values(), [])


class AdxTest(SimTestCase):
    def test_adx_with_uids(self):
        doc = adx(['<group orgUnit="%s" period="2024-01-01/P1M" dataSet="%s">'
                   '<dataValue dataElement="%s" categoryOptionCombo="%s" value="35"/>'
                   '<dataValue dataElement="%s" value="3"/></group>'
                   % (OU, DS, DE_ORS, COC_CONSUMED, DE_AMOX)])
        status, _, body = self.sim.post(doc, path="/api/dataValueSets?idScheme=UID",
                                        ctype="application/adx+xml")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["response"]["importCount"]["imported"], 2)
        self.assertEqual(body["response"]["importOptions"]["idSchemes"], {"idScheme": "UID"})
        got = {(v["dataElement"], v["period"], v["categoryOptionCombo"], v["value"])
               for v in self.sim.values()}
        self.assertEqual(got, {(DE_ORS, "202401", COC_CONSUMED, "35"),
                               (DE_AMOX, "202401", COC_DEFAULT, "3")})

    def test_adx_with_codes_and_exploded_category(self):
        doc = adx([
            '<group orgUnit="FAC-0042" period="2024-02-01/P1M" dataSet="LMIS_MONTHLY" '
            'completeDate="2024-03-05">'
            '<dataValue dataElement="ORS1L" STOCK_MEASURE="CONSUMED" value="35"/>'
            '<dataValue dataElement="AMOX250" value="120"><annotation>checked</annotation>'
            '</dataValue>'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="NOPE" value="1"/>'
            '<dataValue dataElement="AMOX250" AGE_GROUP="U5" value="1"/>'
            '</group>',
            '<group orgUnit="FAC-0043" period="2024-01-15/P1M" dataSet="LMIS_MONTHLY">'
            '<dataValue dataElement="AMOX250" value="1"/></group>',
            '<group orgUnit="FAC-0043" period="2024-12-30/P7D" dataSet="LMIS_MONTHLY">'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="STOCK_ON_HAND" value="9"/></group>'])
        status, _, body = self.sim.post(doc, ctype="application/adx+xml")
        self.assertEqual(status, 409, body)
        s = body["response"]
        self.assertEqual(s["importCount"], {"imported": 3, "updated": 0, "ignored": 3, "deleted": 0})
        self.assertEqual(s["rejectedIndexes"], [2, 3, 4])
        self.assertEqual(s["dataSetComplete"], "2024-03-05")
        e7613 = sorted((c["indexes"], c["object"]) for c in s["conflicts"]
                       if c["errorCode"] == "E7613")
        self.assertEqual(e7613, [([2], "STOCK_MEASURE=NOPE"), ([3], "AGE_GROUP=U5")])
        self.assertConflict(s, "E7611", [4], "period", "2024-01-15/P1M")
        got = {(v["dataElement"], v["period"], v["orgUnit"], v["categoryOptionCombo"], v["value"],
                v["comment"]) for v in self.sim.values()}
        self.assertEqual(got, {(DE_ORS, "202402", OU, COC_CONSUMED, "35", None),
                               # an <annotation> is the value of a text data element
                               # only; on a numeric one DHIS2 ignores it
                               (DE_AMOX, "202402", OU, COC_DEFAULT, "120", None),
                               (DE_AMOX, "2025W1", OU2, COC_SOH, "9", None)})

    def test_adx_category_attributes_with_uid_scheme(self):
        doc = adx(['<group orgUnit="%s" period="2024-01-01/P1M" dataSet="%s">'
                   '<dataValue dataElement="%s" lH5Zs0p3oGD="Cn6pWx3Hq5C" value="4"/></group>'
                   % (OU, DS, DE_ORS)])
        status, _, body = self.sim.post(doc, path="/api/dataValueSets?idScheme=uid",
                                        ctype="application/adx+xml")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.sim.values()[0]["categoryOptionCombo"], COC_CONSUMED)

    def test_doctype_and_garbage_refused(self):
        laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<adx xmlns="urn:ihe:qrph:adx:2015"><group orgUnit="FAC-0042" '
                  'period="2024-01-01/P1M" dataSet="LMIS_MONTHLY"><dataValue dataElement="AMOX250" '
                  'value="1" comment="&lol2;"/></group></adx>')
        for doc in (laughs, "<adx", '<other xmlns="urn:x"/>'):
            status, _, body = self.sim.post(doc, ctype="application/adx+xml")
            self.assertEqual(status, 400, doc)
            self.assertEqual(body["status"], "ERROR")
        status, _, body = self.sim.post(laughs, ctype="application/adx+xml")
        self.assertIn("DOCTYPE", body["message"])
        self.assertEqual(self.sim.values(), [])


class MetadataTest(SimTestCase):
    def test_list_endpoints(self):
        status, _, body = self.sim.get(
            "/api/dataElements?filter=id:in:[%s,%s,xxxxxxxxxxx]&fields=id,code,valueType"
            "&paging=false" % (DE_AMOX, DE_ORS))
        self.assertEqual(status, 200)
        self.assertEqual(body, {"dataElements": [
            {"id": DE_AMOX, "code": "AMOX250", "valueType": "INTEGER"},
            {"id": DE_ORS, "code": "ORS1L", "valueType": "INTEGER"}]})

        status, _, body = self.sim.get("/api/organisationUnits?filter=code:in:[FAC-0042,NOPE]"
                                       "&fields=id,code")
        self.assertEqual(body["organisationUnits"], [{"id": OU, "code": "FAC-0042"}])
        self.assertEqual(body["pager"]["total"], 1)

        status, _, body = self.sim.get("/api/categoryOptionCombos?filter=id:in:[%s,%s]"
                                       "&fields=id,name&paging=false" % (COC_DEFAULT, AOC_DEFAULT))
        self.assertEqual(sorted(c["id"] for c in body["categoryOptionCombos"]),
                         sorted([COC_DEFAULT, AOC_DEFAULT]))

        status, _, body = self.sim.get("/api/dataSets?paging=false")
        self.assertEqual([d["id"] for d in body["dataSets"]], [DS])

        status, _, body = self.sim.get("/api/dataElements?filter=shortName:eq:x")
        self.assertEqual(status, 400)

    def test_single_objects(self):
        status, _, body = self.sim.get("/api/organisationUnits/%s?fields=id,name,code" % OU)
        self.assertEqual(status, 200)
        self.assertEqual(body, {"id": OU, "code": "FAC-0042", "name": "Kalonga Health Centre"})
        status, _, body = self.sim.get("/api/organisationUnits/xxxxxxxxxxx")
        self.assertEqual(status, 404)
        self.assertEqual(body["status"], "ERROR")
        self.assertEqual(body["httpStatusCode"], 404)
        status, _, body = self.sim.get(
            "/api/dataSets/%s?fields=id,periodType,dataSetElements[dataElement[id]],"
            "organisationUnits[id]" % DS)
        self.assertEqual(status, 200)
        self.assertEqual(body["periodType"], "Monthly")
        self.assertIn({"dataElement": {"id": DE_AMOX}}, body["dataSetElements"])
        self.assertIn({"id": OU}, body["organisationUnits"])
        self.assertNotIn("name", body)
        status, _, body = self.sim.get("/api/37/system/info")
        self.assertEqual(status, 200)


class Version237Test(SimTestCase):
    sim_args = ("--version", "2.37")

    def test_bare_summary_and_200(self):
        status, _, body = self.sim.get("/api/system/info")
        self.assertTrue(body["version"].startswith("2.37"), body)
        payload = {"period": "202401", "orgUnit": OU,
                   "dataValues": [{"dataElement": "xxxxxxxxxxx", "value": "1"}]}
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["responseType"], "ImportSummary")
        self.assertEqual(body["status"], "ERROR")
        self.assertConflict(body, "E7610", [0], "dataElement", "xxxxxxxxxxx")


class FaultTest(SimTestCase):
    def test_query_string_faults(self):
        status, _, body = self.sim.post(fixture_set(), path="/api/dataValueSets?simFail=503")
        self.assertEqual(status, 503)
        self.assertEqual(body["httpStatusCode"], 503)
        self.assertEqual(body["status"], "ERROR")
        self.assertEqual(self.sim.get("/api/system/info?simFail=500")[0], 500)

        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.sim.post(fixture_set(), path="/api/dataValueSets?simDrop=1")
        self.assertEqual(self.sim.values(), [])

        # A stall delays only its own request.
        result = {}

        def stalled():
            t0 = time.monotonic()
            result["status"] = self.sim.get("/api/system/info?simStall=0.8")[0]
            result["elapsed"] = time.monotonic() - t0
        t = threading.Thread(target=stalled)
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        self.assertEqual(self.sim.get("/api/system/info")[0], 200)
        self.assertLess(time.monotonic() - t0, 0.5)
        t.join(5)
        self.assertEqual(result["status"], 200)
        self.assertGreaterEqual(result["elapsed"], 0.75)

        with self.assertRaises((socket.timeout, TimeoutError)):
            self.sim.get("/api/system/info?simStall=2", timeout=0.3)

    def test_admin_faults_and_counters(self):
        payload = fixture_set()
        status, _, body = self.sim.request("POST", "/admin/faults",
                                           body={"fail_status": 500, "fail_count": 2}, auth=None)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.sim.post(payload)[0], 500)
        self.assertEqual(self.sim.get("/api/system/info")[0], 200)  # only imports are faulted
        self.assertEqual(self.sim.post(payload)[0], 500)
        self.assertEqual(self.sim.post(payload)[0], 200)

        self.sim.request("POST", "/admin/faults", body={"drop_count": 1}, auth=None)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.sim.post(payload)
        self.assertEqual(self.sim.post(payload)[0], 200)

        self.sim.request("POST", "/admin/faults", body={"stall_seconds": 0.4, "stall_count": 1},
                         auth=None)
        t0 = time.monotonic()
        self.assertEqual(self.sim.post(payload)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        t0 = time.monotonic()
        self.assertEqual(self.sim.post(payload)[0], 200)
        self.assertLess(time.monotonic() - t0, 0.35)

        self.sim.request("POST", "/admin/faults", body={"fail_status": 503, "fail_count": 5},
                         auth=None)
        self.sim.request("POST", "/admin/faults", body={"clear": True}, auth=None)
        self.assertEqual(self.sim.post(payload)[0], 200)

        stats = self.sim.stats()
        self.assertEqual(stats["imports"], 8)
        self.assertEqual(stats["values"], len(payload["dataValues"]))
        self.assertGreater(stats["requests"], 8)

        status, _, _ = self.sim.request("POST", "/admin/reset", auth=None)
        self.assertEqual(status, 200)
        self.assertEqual(self.sim.values(), [])
        stats = self.sim.stats()
        self.assertEqual((stats["imports"], stats["values"]), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
