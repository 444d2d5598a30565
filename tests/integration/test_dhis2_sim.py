#!/usr/bin/env python3
"""Integration test of the DHIS2 simulator (tests/dhis2-sim), standard library only.

Each test starts its own dhis2-sim (on a free port, with the fixture metadata and the
DHIS2 release of the test: --version), talks HTTP to it and stops it with SIGTERM in
tearDown (also when the test failed), checking that it exits 0 without sanitizer
reports. The rules each test checks are the ones tests/dhis2-sim/README.md documents,
with the dhis2-core classes they come from.

Environment (set by ctest):
  HIBUS_DHIS2_SIM   the dhis2-sim binary
  HIBUS_SOURCE_DIR  the source tree (for tests/dhis2-sim/metadata.json)
  HIBUS_BUILD_DIR   the build tree (unused here)
"""

import base64
import datetime
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

DS = "uRfFkKfeb3Q"              # LMIS_MONTHLY (default attribute combo)
DS_FAC = "DsFacility1"          # FACILITY_MONTHLY (not assigned to FAC-0100)
DS_FUND = "DsLmisFund1"         # LMIS_FUNDED (attribute combo FUNDING)
DS_REASON = "DsLmisRsn01"       # LMIS_BY_REASON (AMOX250's losses and adjustments by reason)
OU = "cLq0tI1jksz"              # FAC-0042
OU2 = "p88r7fYkDc9"             # FAC-0043
OU3 = "kVncLVPFjTT"             # FAC-0100
DE_AMOX = "PRIVrEScHcE"         # AMOX250, INTEGER, zeroIsSignificant
DE_ORS = "YpYGky8q06j"          # ORS1L, INTEGER, zeroIsSignificant
DE_OPD = "DeOpdVisits"          # OPD-VISITS, INTEGER_ZERO_OR_POSITIVE, zero not significant
DE_STAFF = "DeStaffTrnd"        # STAFF-TRAINED, NUMBER, zero not significant
DE_BED = "DeBedOccupy"          # BED-OCCUPANCY, PERCENTAGE, AVERAGE, zero not significant
DE_REMARKS = "DeRemarks01"      # REMARKS, TEXT
DE_NOTES = "DeSupNotes1"        # SUPERVISOR-NOTES, LONG_TEXT
DE_VERIFIED = "DeVerified1"     # REPORT-VERIFIED, BOOLEAN
COC_DEFAULT = "MSc0sorvCNq"
COC_CONSUMED = "LelQdVJoKer"
COC_SOH = "PcAgkuk85UK"
AOC_DEFAULT = "pafMuhXXF9W"
AOC_GOV = "AocGov00001"         # code GOV
AOC_DONOR = "AocDonor001"       # code DONOR

RELEASES = ("2.36", "2.37", "2.38", "2.39", "2.40", "2.41", "2.42")


def wait_until(fn, timeout=10.0, interval=0.02, what="condition"):
    """Calls fn until it returns a true value; returns it, or fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def fixture_values():
    """Every (stock data element, non-default stock COC) for FAC-0042, January 2024."""
    values = []
    n = 0
    for de in METADATA["dataElements"]:
        if de.get("categoryCombo") != "CcStockMsr1":
            continue
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


def this_month():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m")


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


class Sim:
    """A running dhis2-sim; stop() sends SIGTERM and returns (exit code, stderr)."""

    def __init__(self, *extra, metadata=METADATA_PATH):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [SIM_BIN, "--port", "0", "--metadata", metadata, "--quiet", *extra],
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        deadline = time.monotonic() + 30  # a bound: the loop ends once it says it listens
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

    def summary(self, body, path="/api/dataValueSets", ctype=None, **kw):
        """POSTs and returns (HTTP status, ImportSummary, envelope or None)."""
        status, _, data = self.post(body, path=path, ctype=ctype, **kw)
        assert isinstance(data, dict), (status, data)
        if "response" in data:
            return status, data["response"], data
        return status, data, None

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def values(self):
        status, _, data = self.request("GET", "/admin/values", auth=None)
        assert status == 200, status
        return data

    def completions(self):
        status, _, data = self.request("GET", "/admin/completions", auth=None)
        assert status == 200, status
        return data

    def stats(self):
        return self.request("GET", "/admin/stats", auth=None)[2]

    def reset(self):
        assert self.request("POST", "/admin/reset", auth=None)[0] == 200

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


def counts(s):
    c = s["importCount"]
    return (c["imported"], c["updated"], c["ignored"], c["deleted"])


def stored(sim, **match):
    """The stored values whose fields equal `match`."""
    return [v for v in sim.values() if all(v.get(k) == x for k, x in match.items())]


class SimTestCase(unittest.TestCase):
    sim_args = ()

    def setUp(self):
        self.sims = []
        self.sim = self.start(*self.sim_args)

    def start(self, *args, **kw):
        sim = Sim(*args, **kw)
        self.sims.append(sim)
        return sim

    def release(self, version):
        """A fresh simulator imitating `version` (stopped in tearDown)."""
        return self.start("--version", version)

    def tearDown(self):
        for sim in self.sims:
            rc, err = sim.stop()
            self.assertEqual(rc, 0, "dhis2-sim exit code %s, stderr:\n%s" % (rc, err))
            for marker in SANITIZER_MARKERS:
                self.assertNotIn(marker, err, err)

    def assertConflict(self, summary, code, indexes, prop, obj=None):
        matches = [c for c in summary["conflicts"] if c.get("errorCode") == code]
        self.assertEqual(len(matches), 1, summary["conflicts"])
        c = matches[0]
        self.assertEqual(c.get("indexes"), indexes, c)
        self.assertEqual(c.get("property"), prop, c)
        self.assertIn("value", c)
        self.assertIn("objects", c)
        if obj is not None:
            self.assertEqual(c["object"], obj, c)
            self.assertIn(obj, c["value"], c)
        return c


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


class VersionOptionTest(SimTestCase):
    def test_versions(self):
        for arg, shown in (("2.36", "2.36.13.2"), ("2.37", "2.37.10"), ("2.38", "2.38.7"),
                           ("2.39", "2.39.10.1"), ("2.40", "2.40.4"), ("2.40.2", "2.40.2"),
                           ("2.41", "2.41.9.1"), ("2.42.1", "2.42.1"), ("2.39.5.1", "2.39.5.1")):
            sim = self.release(arg)
            self.assertEqual(sim.get("/api/system/info")[2]["version"], shown, arg)
        for bad in ("2.35", "2.43", "3.40", "2.40x", "2"):
            p = subprocess.run([SIM_BIN, "--port", "0", "--metadata", METADATA_PATH,
                                "--version", bad], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, bad)
            self.assertIn("invalid version", p.stderr)


class JsonImportTest(SimTestCase):
    """2.40 (the fixture's 2.40.4)."""

    def test_import_then_unchanged_reimport_is_ignored(self):
        payload = fixture_set()
        n = len(payload["dataValues"])
        status, _, body = self.sim.post(payload)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["httpStatus"], body["status"], body["message"]),
                         ("OK", "OK", "Import was successful."))
        s = body["response"]
        self.assertEqual(s["responseType"], "ImportSummary")
        self.assertEqual(s["status"], "SUCCESS")
        self.assertEqual(s["description"], "Import process completed successfully")
        self.assertEqual(counts(s), (n, 0, 0, 0))
        self.assertEqual(s["conflicts"], [])
        self.assertEqual(s["rejectedIndexes"], [])
        self.assertEqual(s["dataSetComplete"], "2024-02-05")
        self.assertEqual(s["importOptions"]["importStrategy"], "CREATE_AND_UPDATE")
        self.assertFalse(s["importOptions"]["dryRun"])

        # re-sent unchanged: ignored, SUCCESS, no conflict (dataValueUpdateShouldBeIgnored)
        status, _, body = self.sim.post(payload, auth=TOKEN)
        self.assertEqual(status, 200, body)
        s = body["response"]
        self.assertEqual((s["status"], counts(s), s["conflicts"], s["rejectedIndexes"]),
                         ("SUCCESS", (0, 0, n, 0), [], []))
        # one value changed, one comment added: updated
        payload["dataValues"][0]["value"] = "999"
        payload["dataValues"][1]["comment"] = "recounted"
        s = self.sim.summary(payload)[1]
        self.assertEqual(counts(s), (0, 2, n - 2, 0))

        expected = sorted(
            ({"dataElement": v["dataElement"], "period": "202401", "orgUnit": OU,
              "categoryOptionCombo": v["categoryOptionCombo"], "attributeOptionCombo": AOC_DEFAULT,
              "value": v["value"], "comment": v.get("comment")} for v in payload["dataValues"]),
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

    def test_set_level_period_and_org_unit_win(self):
        # DataValueSetImportContext: the outer period/orgUnit/AOC replace a value's own
        payload = {"period": "202401", "orgUnit": OU, "attributeOptionCombo": AOC_GOV,
                   "dataValues": [{"dataElement": DE_AMOX, "period": "202402", "orgUnit": OU2,
                                   "attributeOptionCombo": AOC_DONOR, "value": "1"}]}
        self.assertEqual(self.sim.summary(payload)[0], 200)
        v = self.sim.values()[0]
        self.assertEqual((v["period"], v["orgUnit"], v["attributeOptionCombo"]),
                         ("202401", OU, AOC_GOV))
        # an outer period that is not valid is no outer period: the value's own is used
        payload = {"period": "2024M1", "orgUnit": OU,
                   "dataValues": [{"dataElement": DE_ORS, "period": "202402", "value": "1"}]}
        self.assertEqual(self.sim.summary(payload)[0], 200)
        self.assertEqual(stored(self.sim, dataElement=DE_ORS)[0]["period"], "202402")

    BAD = {"dataSet": DS, "period": "202401", "orgUnit": OU, "dataValues": [
        {"dataElement": DE_AMOX, "categoryOptionCombo": COC_SOH, "value": "5"},        # 0 ok
        {"dataElement": "xxxxxxxxxxx", "value": "1"},                                 # 1 E7610
        {"dataElement": DE_ORS, "categoryOptionCombo": "nOsuchCoc01", "value": "1"},   # 2 E7613
        {"dataElement": DE_ORS, "value": "4.5"},                                      # 3 E7619
        {"dataElement": "xxxxxxxxxxx", "value": "2"},                                 # 4 E7610
        {"dataElement": DE_ORS, "categoryOptionCombo": COC_SOH},                      # 5 E7618
        {"dataElement": DE_ORS, "attributeOptionCombo": "nOsuchAoc01", "value": "1"},  # 6 E7615
        {"dataElement": DE_REMARKS, "comment": "x" * 50001},                          # 7 E7620
    ]}

    def check_bad_summary(self, s, rejected=True):
        self.assertEqual(s["responseType"], "ImportSummary")
        self.assertEqual(s["status"], "WARNING")
        self.assertEqual(counts(s), (1, 0, 7, 0))
        if rejected:
            self.assertEqual(s["rejectedIndexes"], [1, 2, 3, 4, 5, 6, 7])
        self.assertConflict(s, "E7610", [1, 4], "dataElement", "xxxxxxxxxxx")
        c = self.assertConflict(s, "E7613", [2], "categoryOptionCombo", "nOsuchCoc01")
        self.assertEqual(c["objects"], {"categoryOptionCombo": "nOsuchCoc01"})
        c = self.assertConflict(s, "E7619", [3], "value", DE_ORS)
        self.assertEqual(c["objects"], {"dataElement": DE_ORS, "value": "value_not_integer"})
        self.assertConflict(s, "E7618", [5], "value", DE_ORS)
        c = self.assertConflict(s, "E7615", [6], "attributeOptionCombo", "nOsuchAoc01")
        self.assertEqual(c["objects"], {"categoryOptionCombo": "nOsuchAoc01"})
        self.assertConflict(s, "E7620", [7], "comment")
        self.assertEqual(len(s["conflicts"]), 6)

    def test_conflicts_give_warning_and_409(self):
        status, headers, body = self.sim.post(self.BAD)
        self.assertEqual(status, 409, body)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual((body["httpStatus"], body["httpStatusCode"], body["status"]),
                         ("Conflict", 409, "WARNING"))
        self.assertEqual(body["message"],
                         "One more conflicts encountered, please check import summary.")
        self.check_bad_summary(body["response"])
        self.assertEqual(len(self.sim.values()), 1)

    def test_unknown_org_unit_is_e7612_with_its_type_name(self):
        payload = {"period": "202401", "dataValues": [
            {"dataElement": DE_AMOX, "orgUnit": "nOsuchOrgU1", "value": "1"},
            {"dataElement": DE_AMOX, "orgUnit": "FAC-0042", "value": "1"}]}
        s = self.sim.summary(payload)[1]
        # the org unit scheme is UID: a code is unknown too; one conflict per object
        self.assertEqual([(c["errorCode"], c["property"], c["objects"], c["indexes"])
                          for c in s["conflicts"]],
                         [("E7612", "orgUnit", {"organisationUnit": "nOsuchOrgU1"}, [0]),
                          ("E7612", "orgUnit", {"organisationUnit": "FAC-0042"}, [1])])

    def test_everything_ignored_is_still_warning(self):
        # ERROR is only for an aborted or failed import, not for "all values ignored"
        payload = {"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "value": "abc"}, {"dataElement": DE_ORS, "value": "-"}]}
        status, s, env = self.sim.summary(payload)
        self.assertEqual((status, env["status"], s["status"], counts(s)),
                         (409, "WARNING", "WARNING", (0, 0, 2, 0)))

    def test_set_level_problems_abort_with_error(self):
        cases = [({"dataSet": "nOsuchDs001"}, "E7600", "dataSet", {"dataSet": "nOsuchDs001"}),
                 ({"orgUnit": "nOsuchOrgU1"}, "E7603", "orgUnit",
                  {"organisationUnit": "nOsuchOrgU1", "dataSet": None}),
                 ({"attributeOptionCombo": "nOsuchAoc01", "dataSet": DS}, "E7604",
                  "attributeOptionCombo", {"categoryOptionCombo": "nOsuchAoc01", "dataSet": DS})]
        for extra, code, prop, objects in cases:
            payload = dict({"period": "202401", "orgUnit": OU, "dataValues": [
                {"dataElement": DE_AMOX, "value": "1"}]}, **extra)
            status, s, env = self.sim.summary(payload)
            self.assertEqual((status, env["status"], env["message"]),
                             (409, "ERROR", "An error occurred, please check import summary."))
            self.assertEqual((s["status"], s["description"], counts(s)),
                             ("ERROR", "Import process was aborted", (0, 0, 0, 0)))
            c = self.assertConflict(s, code, None, prop)
            self.assertEqual(c["objects"], objects)
            self.assertNotIn("dataSetComplete", s)
        self.assertEqual(self.sim.values(), [])

    def test_unreadable_payloads_fail_the_import(self):
        for body in ("{not json", "[1, 2]", '{"dataValues": {}}', '{"dataValues": [3]}',
                     '{"dataValues": [{"dataElement": ["x"]}]}', '{"strategy": "create"}'):
            status, _, data = self.sim.post(body, ctype="application/json")
            self.assertEqual(status, 409, body)
            s = data["response"]
            self.assertEqual(s["status"], "ERROR", body)
            self.assertTrue(s["description"].startswith("The import process failed: "), s)
            self.assertEqual((counts(s), s["conflicts"]), ((0, 0, 0, 0), []))

    def test_empty_value_deletes_or_is_ignored(self):
        base = {"period": "202401", "orgUnit": OU}
        self.sim.post(dict(base, dataValues=[{"dataElement": DE_AMOX, "value": "3"}]))
        s = self.sim.summary(dict(base, dataValues=[{"dataElement": DE_AMOX, "value": ""},
                                                    {"dataElement": DE_ORS, "value": " "}]))[1]
        # "" is a value (no E7618) that stores as null: an update deletes, a create is ignored
        self.assertEqual((s["status"], counts(s), s["rejectedIndexes"]),
                         ("SUCCESS", (0, 0, 1, 1), []))
        self.assertEqual(self.sim.values(), [])


class PeriodTest(SimTestCase):
    CASES = [("2024W1", "2024W1"), ("2024W01", "2024W1"), ("2020W53", "2020W53"),
             ("2024WedW1", "2024WedW1"), ("2024ThuW2", "2024ThuW2"), ("2024SatW3", "2024SatW3"),
             ("2024SunW1", "2024SunW1"), ("2024BiW1", "2024BiW1"), ("2024Q1", "2024Q1"),
             ("2024S2", "2024S2"), ("2024AprilS1", "2024AprilS1"), ("2024NovS1", "2024NovS1"),
             ("2024NovQ1", "2024NovQ1"), ("2024", "2024"), ("2024April", "2024April"),
             ("2024July", "2024July"), ("2024Oct", "2024Oct"), ("2024Nov", "2024Nov"),
             ("202406B", "202406B"), ("20240229", "20240229"), ("2024-01", "202401"),
             ("2024-01-15", "20240115")]
    BAD = ["2021W53", "202407B", "20230229", "2024Q5", "2024Q01", "2024M1", "24", "202413",
           "2024BiW27", "2024Sep", "2099"]

    def post_periods(self, sim, good, bad):
        values = [{"dataElement": DE_AMOX, "period": p, "value": "1"} for p in good + bad]
        return sim.summary({"orgUnit": OU, "dataValues": values})[1]

    def test_periods_2_40(self):
        good = [p for p, _ in self.CASES]
        s = self.post_periods(self.sim, good, self.BAD)
        self.assertEqual(s["rejectedIndexes"], list(range(len(good), len(good) + len(self.BAD))))
        e7611 = [c for c in s["conflicts"] if c["errorCode"] == "E7611"]
        self.assertEqual(sorted(c["object"] for c in e7611), sorted(self.BAD[:-1]))
        self.assertConflict(s, "E7641", [len(good) + len(self.BAD) - 1], "period", "2099")
        # 2024W01 is stored as 2024W1 (and 2024-01 as 202401): the second is unchanged
        self.assertEqual(counts(s)[:2], (len(set(c for _, c in self.CASES)), 0))
        self.assertEqual(sorted(v["period"] for v in self.sim.values()),
                         sorted(set(c for _, c in self.CASES)))

    def test_release_differences(self):
        # yyyy-MM-dd from 2.38; NovQ from 2.38.4/2.39.3/2.40.1/2.41; Sep from 2.42 only
        for version, ok, bad in (
                ("2.37", ["2024-01", "2024NovS2", "2024Nov"], ["2024-01-15", "2024NovQ1", "2024Sep"]),
                ("2.38.3", ["2024-01-15"], ["2024NovQ1", "2024Sep"]),
                ("2.38.4", ["2024-01-15", "2024NovQ2"], ["2024Sep"]),
                ("2.40.0", [], ["2024NovQ1"]),
                ("2.41", ["2024NovQ3"], ["2024Sep"]),
                ("2.42", ["2024Sep", "2024NovQ4"], [])):
            with self.subTest(version=version):
                sim = self.release(version)
                s = self.post_periods(sim, ok, bad)
                self.assertEqual(counts(s)[0], len(ok), s)
                self.assertEqual(sorted(c["object"] for c in s["conflicts"]), sorted(bad), s)

    def test_current_period_is_not_open(self):
        # DataSet.openFuturePeriods = 0: PeriodType.getFuturePeriod(0) is the previous
        # period, so data for the running month is refused too
        s = self.sim.summary({"orgUnit": OU, "dataSet": DS, "dataValues": [
            {"dataElement": DE_AMOX, "period": this_month(), "value": "1"}]})[1]
        c = self.assertConflict(s, "E7641", [0], "period", this_month())
        self.assertEqual(c["objects"]["dataSet"], DS)
        # a data element in no data set of the org unit (FAC-0100 has no FACILITY_MONTHLY)
        # has no target data set: no future check (2.40's ImportContext.getTargetDataSets)
        s = self.sim.summary({"orgUnit": OU3, "dataValues": [
            {"dataElement": DE_OPD, "period": this_month(), "value": "4"}]})[1]
        self.assertEqual((s["status"], counts(s)), ("SUCCESS", (1, 0, 0, 0)))

    def test_period_boundaries(self):
        s = self.sim.summary({"orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "period": p, "value": "1"}
            for p in ("2025NovQ1", "2025NovS1", "2025Nov", "2025W1", "2024SunW1")]})[1]
        self.assertEqual(counts(s)[0], 5, s)
        got = self.sim.get("/api/dataValueSets?orgUnit=%s" % OU)[2]["dataValues"]
        self.assertEqual(sorted(v["period"] for v in got),
                         sorted(["2024SunW1", "2025NovQ1", "2025NovS1", "2025Nov", "2025W1"]))


class ZeroTest(SimTestCase):
    """zeroIsSignificant (ValidationUtils.dataValueIsZeroAndInsignificant)."""

    def zeros(self, sim, existing=()):
        sim.reset()
        if existing:
            sim.post({"period": "202401", "orgUnit": OU, "dataValues": [
                {"dataElement": de, "value": "5"} for de in existing]})
        return sim.summary({"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_OPD, "value": "0"},     # zero not significant
            {"dataElement": DE_STAFF, "value": "0.00"},  # NUMBER: 0.00 is zero too
            {"dataElement": DE_BED, "value": "0"},     # AVERAGE: kept
            {"dataElement": DE_AMOX, "value": "0"}]})  # zeroIsSignificant: kept

    def test_zero_2_40(self):
        status, s, env = self.zeros(self.sim)
        # not stored, no conflict, SUCCESS and 200; ImportSummary.skipValue's ignored is
        # lost when the summary's count is replaced (setImportCount): in no count at all
        self.assertEqual((status, env["status"], s["status"]), (200, "OK", "SUCCESS"))
        self.assertEqual((counts(s), s["conflicts"], s["rejectedIndexes"]),
                         ((2, 0, 0, 0), [], []))
        self.assertEqual(sorted(v["dataElement"] for v in self.sim.values()),
                         sorted([DE_AMOX, DE_BED]))
        # a zero over a stored value deletes it (saveDataValueUpdate)
        status, s, _ = self.zeros(self.sim, existing=[DE_OPD, DE_STAFF])
        self.assertEqual((status, s["status"], counts(s)), (200, "SUCCESS", (2, 0, 0, 2)))
        self.assertEqual(sorted(v["dataElement"] for v in self.sim.values()),
                         sorted([DE_AMOX, DE_BED]))

    def test_zero_per_release(self):
        for version in RELEASES:
            with self.subTest(version=version):
                sim = self.release(version)
                status, s, env = self.zeros(sim)
                self.assertEqual((status, s["status"], s["conflicts"]), (200, "SUCCESS", []))
                self.assertEqual(env is None, version in ("2.36", "2.37"))
                # 2.36 counts the skipped zeros as ignored; later releases in no count
                self.assertEqual(counts(s), (2, 0, 2 if version == "2.36" else 0, 0))
                status, s, _ = self.zeros(sim, existing=[DE_OPD])
                if version == "2.36":  # skipped before the stored value is looked at
                    self.assertEqual(counts(s), (2, 0, 2, 0))
                    self.assertEqual(len(stored(sim, dataElement=DE_OPD)), 1)
                else:
                    self.assertEqual(counts(s), (2, 0, 0, 1))
                    self.assertEqual(stored(sim, dataElement=DE_OPD), [])


class UnchangedTest(SimTestCase):
    """dataValueUpdateShouldBeIgnored: 2.38.6, 2.39.5, 2.40.3, 2.41 on."""

    def test_unchanged_resend_per_release(self):
        payload = {"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "value": "5", "comment": "c"},
            {"dataElement": DE_ORS, "value": "6"}]}
        for version, ignored in (("2.36", False), ("2.37", False), ("2.38.5", False),
                                 ("2.38", True), ("2.39.4", False), ("2.39.5", True),
                                 ("2.40.2", False), ("2.40.3", True), ("2.41", True),
                                 ("2.42", True)):
            with self.subTest(version=version):
                sim = self.release(version)
                self.assertEqual(counts(sim.summary(payload)[1]), (2, 0, 0, 0))
                status, s, _ = sim.summary(payload)
                self.assertEqual((status, s["status"], s["conflicts"]), (200, "SUCCESS", []))
                self.assertEqual(counts(s), (0, 0, 2, 0) if ignored else (0, 2, 0, 0))
                if "rejectedIndexes" in s:
                    self.assertEqual(s["rejectedIndexes"], [])
                # a changed comment or followup is an update everywhere
                changed = json.loads(json.dumps(payload))
                changed["dataValues"][0]["comment"] = "d"
                changed["dataValues"][1]["followup"] = True
                self.assertEqual(counts(sim.summary(changed)[1]), (0, 2, 0, 0))


class ReleaseReplyTest(SimTestCase):
    """Envelope, HTTP status, status and summary fields per release."""

    WARN = {"period": "202401", "orgUnit": OU, "dataValues": [
        {"dataElement": DE_AMOX, "value": "1"}, {"dataElement": "xxxxxxxxxxx", "value": "1"}]}
    ABORT = {"period": "202401", "orgUnit": OU, "dataSet": "nOsuchDs001",
             "dataValues": [{"dataElement": DE_AMOX, "value": "1"}]}

    def test_replies_per_release(self):
        for version in RELEASES:
            with self.subTest(version=version):
                sim = self.release(version)
                envelope = version not in ("2.36", "2.37")
                # WARNING
                status, s, env = sim.summary(self.WARN)
                self.assertEqual((status, env is not None), (409, True) if envelope else (200, False))
                self.assertEqual((s["status"], counts(s)), ("WARNING", (1, 0, 1, 0)))
                if envelope:
                    self.assertEqual((env["httpStatusCode"], env["status"]), (409, "WARNING"))
                # rejectedIndexes: 2.39.2/2.40.1/2.41 on (the defaults: 2.39.10.1, 2.40.4)
                if version in ("2.36", "2.37", "2.38"):
                    self.assertNotIn("rejectedIndexes", s)
                else:
                    self.assertEqual(s["rejectedIndexes"], [1])
                c = s["conflicts"][0]
                if version == "2.36":  # ImportConflict(object, value) only
                    self.assertEqual(c, {"object": "xxxxxxxxxxx",
                                         "value": "Data element not found or not accessible"})
                else:
                    self.assertEqual((c["errorCode"], c["indexes"]), ("E7610", [1]))
                # ERROR (aborted)
                status, s, env = sim.summary(self.ABORT)
                self.assertEqual(status, 409 if envelope else 200)
                self.assertEqual((s["status"], s["description"]),
                                 ("ERROR", "Import process was aborted"))
                if envelope:
                    self.assertEqual(env["status"], "ERROR")
                # SUCCESS with an ignored value and no conflict: CREATE over a stored value
                ok = dict(self.WARN, dataValues=self.WARN["dataValues"][:1])
                status, s, env = sim.summary(ok, path="/api/dataValueSets?importStrategy=CREATE")
                self.assertEqual((status, s["status"], s["conflicts"], counts(s)),
                                 (200, "SUCCESS", [], (0, 0, 1, 0)))
                if "rejectedIndexes" in s:  # rejected, without a conflict
                    self.assertEqual(s["rejectedIndexes"], [0])
                # /api/37/ pins the bare summary on 2.37-2.41 (withPlainResponseBefore(V38));
                # 2.42 no longer does; 2.37 answers the envelope for /api/38/
                status, s, env = sim.summary(self.WARN, path="/api/37/dataValueSets")
                self.assertEqual(env is None, version != "2.42")
                self.assertEqual(status, 409 if version == "2.42" else 200)
                status, s, env = sim.summary(self.WARN, path="/api/38/dataValueSets")
                self.assertEqual(env is None, version == "2.36")

    def test_patch_releases(self):
        for version, has in (("2.39.1", False), ("2.39.2", True), ("2.40.0", False),
                             ("2.40.1", True)):
            with self.subTest(version=version):
                s = self.release(version).summary(self.WARN)[1]
                self.assertEqual("rejectedIndexes" in s, has)

    def test_adx_reply_formats(self):
        doc = adx(['<group orgUnit="FAC-0042" period="2024-01-01/P1M" dataSet="LMIS_MONTHLY">'
                   '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="3"/>'
                   '</group>'])
        # 2.36 answers ADX in XML, whatever the client accepts
        sim = self.release("2.36")
        status, headers, body = sim.post(doc, ctype="application/adx+xml",
                                         headers={"Accept": "application/json"})
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/xml"), headers)
        self.assertIn("<importSummary", body)
        self.assertIn('imported="1"', body)
        # 2.37.0-2.37.2: produces application/xml only
        sim = self.release("2.37.2")
        self.assertEqual(sim.post(doc, ctype="application/adx+xml",
                                  headers={"Accept": "application/json"})[0], 406)
        status, headers, body = sim.post(doc, ctype="application/adx+xml")
        self.assertTrue(headers["content-type"].startswith("application/xml"), headers)
        # 2.37.3 on: negotiated
        sim = self.release("2.37")
        status, headers, body = sim.post(doc, ctype="application/adx+xml",
                                         headers={"Accept": "application/json"})
        self.assertEqual((status, body["status"]), (200, "SUCCESS"))
        status, headers, body = self.sim.post(doc, ctype="application/adx+xml",
                                              headers={"Accept": "application/xml"})
        self.assertEqual(status, 200)
        self.assertIn("<webMessage", body)


class AocTest(SimTestCase):
    def test_set_and_value_level_aoc(self):
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "attributeOptionCombo": AOC_GOV,
                              "dataValues": [{"dataElement": DE_AMOX, "value": "3"}]})[1]
        self.assertEqual(counts(s), (1, 0, 0, 0))
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "attributeOptionCombo": AOC_DONOR, "value": "4"},
            {"dataElement": DE_AMOX, "value": "5"},
            {"dataElement": DE_AMOX, "attributeOptionCombo": "NoSuchAoc01", "value": "6"}]})[1]
        self.assertEqual(counts(s), (2, 0, 1, 0))
        self.assertConflict(s, "E7615", [2], "attributeOptionCombo", "NoSuchAoc01")
        got = {v["attributeOptionCombo"]: v["value"] for v in self.sim.values()}
        self.assertEqual(got, {AOC_GOV: "3", AOC_DONOR: "4", AOC_DEFAULT: "5"})

    def test_aoc_by_code_and_category_options(self):
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "attributeOptionCombo": "DONOR",
                              "dataValues": [{"dataElement": DE_AMOX, "value": "3"}]},
                             path="/api/dataValueSets?categoryOptionComboIdScheme=CODE")[1]
        self.assertEqual(counts(s), (1, 0, 0, 0))
        # attributeCategoryOptions with the data set's attribute combo
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "dataSet": DS_FUND,
                              "attributeCategoryOptions": ["GovOption01"],
                              "dataValues": [{"dataElement": DE_ORS, "value": "7"}]})[1]
        self.assertEqual(counts(s), (1, 0, 0, 0))
        got = {(v["dataElement"], v["attributeOptionCombo"]) for v in self.sim.values()}
        self.assertEqual(got, {(DE_AMOX, AOC_DONOR), (DE_ORS, AOC_GOV)})
        status, s, _ = self.sim.summary({"period": "202401", "orgUnit": OU, "dataSet": DS_FUND,
                                         "attributeCategoryOptions": ["NoSuchOpt01"],
                                         "dataValues": [{"dataElement": DE_ORS, "value": "7"}]})
        self.assertEqual((status, s["status"]), (409, "ERROR"))

    def test_adx_attribute_categories(self):
        doc = adx(['<group orgUnit="FAC-0042" period="2024-01-01/P1M" dataSet="LMIS_FUNDED" '
                   'FUNDING="DONOR"><dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" '
                   'value="35"/></group>',
                   '<group orgUnit="FAC-0043" period="2024-01-01/P1M" dataSet="LMIS_MONTHLY" '
                   'attributeOptionCombo="GOV"><dataValue dataElement="ORS1L" '
                   'categoryOptionCombo="CONSUMED" value="2"/></group>'])
        status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
        self.assertEqual((status, counts(s)), (200, (2, 0, 0, 0)))
        got = {(v["dataElement"], v["orgUnit"], v["categoryOptionCombo"],
                v["attributeOptionCombo"]) for v in self.sim.values()}
        self.assertEqual(got, {(DE_AMOX, OU, COC_CONSUMED, AOC_DONOR),
                               (DE_ORS, OU2, COC_CONSUMED, AOC_GOV)})
        # a data set with an attribute combo needs its categories on the group: the
        # whole import fails (DefaultAdxDataService: group-level AdxException)
        for attrs, msg in (('', "Category combo Funding mechanism must have Funding mechanism"),
                           (' FUNDING="NOPE"', "Invalid attributes: {FUNDING=NOPE}")):
            doc = adx(['<group orgUnit="FAC-0042" period="2024-02-01/P1M" dataSet="LMIS_FUNDED"%s>'
                       '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="1"/>'
                       '</group>' % attrs])
            status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
            self.assertEqual((status, s["status"], counts(s)), (409, "ERROR", (0, 0, 0, 0)))
            self.assertEqual(s["description"], "Data set import failed within group number: 0")
            self.assertEqual(s["conflicts"], [{"object": "ADX Error", "value": msg}])
        self.assertEqual(len(self.sim.values()), 2)


class CompletionTest(SimTestCase):
    def test_complete_date_registers_a_completion(self):
        payload = fixture_set()
        payload["attributeOptionCombo"] = AOC_GOV
        s = self.sim.summary(payload)[1]
        self.assertEqual(s["dataSetComplete"], "2024-02-05")
        # handleComplete gets the fallback (default) option combo, not the set's AOC
        self.assertEqual(self.sim.completions(), [
            {"dataSet": DS, "period": "202401", "orgUnit": OU,
             "attributeOptionCombo": AOC_DEFAULT, "completeDate": "2024-02-05",
             "storedBy": "admin"}])
        payload["completeDate"] = "2024-02-09"
        self.sim.post(payload)
        self.assertEqual([c["completeDate"] for c in self.sim.completions()], ["2024-02-09"])

        # no data set: nothing is registered
        s = self.sim.summary({"completeDate": "2024-02-05", "period": "202402", "orgUnit": OU,
                              "dataValues": [{"dataElement": DE_AMOX, "value": "1"}]})[1]
        self.assertEqual(s["dataSetComplete"], "false")
        self.assertEqual(len(self.sim.completions()), 1)
        # also in a dry run, and even when every value is refused
        s = self.sim.summary({"dataSet": DS, "completeDate": "2024-03-05", "period": "202402",
                              "orgUnit": OU2, "dryRun": True, "dataValues": [
                                  {"dataElement": "xxxxxxxxxxx", "value": "1"}]})[1]
        self.assertEqual((s["status"], s["dataSetComplete"]), ("WARNING", "2024-03-05"))
        self.assertEqual(len(self.sim.completions()), 2)
        # without a set-level org unit: a conflict, and WARNING
        s = self.sim.summary({"dataSet": DS, "completeDate": "2024-03-05", "period": "202402",
                              "dataValues": [{"dataElement": DE_AMOX, "orgUnit": OU,
                                              "value": "1"}]})[1]
        self.assertEqual(s["status"], "WARNING")
        self.assertIn({"object": "OrganisationUnit",
                       "value": "Must be provided to complete data set"}, s["conflicts"])
        self.assertNotIn("dataSetComplete", s)
        # "true" is today, a future date is today (getCompletionDate, 2.40.3 on)
        for given in ("true", "2999-01-01"):
            s = self.sim.summary({"dataSet": DS, "completeDate": given, "period": "202403",
                                  "orgUnit": OU, "dataValues": []})[1]
            self.assertEqual(s["dataSetComplete"], today())
        s = self.sim.summary({"dataSet": DS, "completeDate": "false", "period": "202404",
                              "orgUnit": OU, "dataValues": []})[1]
        self.assertEqual(s["dataSetComplete"], "false")
        status, s, _ = self.sim.summary({"dataSet": DS, "completeDate": "5.2.2024",
                                         "period": "202404", "orgUnit": OU, "dataValues": []})
        self.assertEqual((status, s["status"]), (409, "ERROR"))

        self.sim.reset()
        self.assertEqual(self.sim.completions(), [])

    def test_adx_complete_date_completes_nothing(self):
        # the ADX group's attributes reach the DXF2 import only as data value attributes
        doc = adx(['<group orgUnit="FAC-0042" period="2024-01-01/P1M" dataSet="LMIS_MONTHLY" '
                   'completeDate="2024-02-05"><dataValue dataElement="AMOX250" '
                   'STOCK_MEASURE="CONSUMED" value="3"/></group>'])
        s = self.sim.summary(doc, ctype="application/adx+xml")[1]
        self.assertEqual((counts(s), s["dataSetComplete"]), ((1, 0, 0, 0), "false"))
        self.assertEqual(self.sim.completions(), [])

    def test_complete_date_before_the_rule(self):
        sim = self.release("2.37")
        s = sim.summary({"dataSet": DS, "completeDate": "2999-01-01", "period": "202401",
                         "orgUnit": OU, "dataValues": []})[1]
        self.assertEqual(s["dataSetComplete"], "2999-01-01")  # not moved to today
        status, s, _ = sim.summary({"dataSet": DS, "completeDate": "true", "period": "202401",
                                    "orgUnit": OU, "dataValues": []})
        self.assertEqual((status, s["status"]), (200, "ERROR"))
        self.assertIn("Invalid format", s["description"])


class TextValueTest(SimTestCase):
    def test_text_values(self):
        long_text = "line\n" * 2000
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "dataSet": DS_FAC, "dataValues": [
            {"dataElement": DE_REMARKS, "value": "Cold chain OK"},
            {"dataElement": DE_NOTES, "value": long_text},
            {"dataElement": DE_VERIFIED, "value": "T"},
            {"dataElement": DE_VERIFIED, "period": "202402", "value": "yes"}]})[1]
        self.assertEqual(counts(s), (3, 0, 1, 0))
        self.assertConflict(s, "E7619", [3], "value", DE_VERIFIED)
        got = {v["dataElement"]: v["value"] for v in self.sim.values()}
        # trimToNull, and normalizeBoolean ("T" is true)
        self.assertEqual(got, {DE_REMARKS: "Cold chain OK", DE_NOTES: long_text.strip(),
                               DE_VERIFIED: "true"})

    def test_adx_annotation(self):
        doc = adx(['<group orgUnit="FAC-0042" period="2024-01-01/P1M" dataSet="FACILITY_MONTHLY">'
                   '<dataValue dataElement="REMARKS" value="0"><annotation>Fridge &amp; generator'
                   ' repaired</annotation></dataValue>'
                   '<dataValue dataElement="OPD-VISITS" value="12"><annotation>ignored'
                   '</annotation></dataValue>'
                   '<dataValue dataElement="SUPERVISOR-NOTES" value="0"/>'
                   '</group>'])
        status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
        # the missing annotation is an ADX conflict added after the DXF2 import, which
        # leaves the status as it was: SUCCESS with a conflict, HTTP 200
        self.assertEqual((status, s["status"], counts(s)), (200, "SUCCESS", (2, 0, 1, 0)))
        self.assertEqual(s["conflicts"], [{"object": "SUPERVISOR-NOTES",
                                           "value": "DataElement expects text annotation"}])
        got = {v["dataElement"]: v["value"] for v in self.sim.values()}
        self.assertEqual(got, {DE_REMARKS: "Fridge & generator repaired", DE_OPD: "12"})
        # 2.42 (AdxDataValueSetReader): the same problem fails the whole import
        sim = self.release("2.42")
        status, s, _ = sim.summary(doc, ctype="application/adx+xml")
        self.assertEqual((status, s["status"], counts(s), s["conflicts"]),
                         (409, "ERROR", (0, 0, 0, 0), []))
        self.assertEqual(s["description"],
                         "The import process failed: DataElement expects text annotation")
        self.assertEqual(sim.values(), [])


class CsvTest(SimTestCase):
    HEADER = "dataelement,period,orgunit,categoryoptioncombo,attributeoptioncombo,value\n"
    ROWS = ('PRIVrEScHcE, 202401 ,cLq0tI1jksz,LelQdVJoKer,,12\n'
            '"YpYGky8q06j","202401","cLq0tI1jksz","","AocGov00001","7"\n'
            'DeRemarks01,202401,cLq0tI1jksz,,,"said ""hello"", twice",admin,,a comment\n'
            '\n'
            'xxxxxxxxxxx,202401,cLq0tI1jksz,,,1\r\n')

    def test_csv_with_header(self):
        status, s, env = self.sim.summary(self.HEADER + self.ROWS, ctype="application/csv")
        self.assertEqual((status, s["status"], counts(s)), (409, "WARNING", (3, 0, 1, 0)))
        self.assertConflict(s, "E7610", [3], "dataElement", "xxxxxxxxxxx")
        got = {(v["dataElement"], v["attributeOptionCombo"]): (v["value"], v["comment"])
               for v in self.sim.values()}
        self.assertEqual(got, {(DE_AMOX, AOC_DEFAULT): ("12", None),
                               (DE_ORS, AOC_GOV): ("7", None),
                               (DE_REMARKS, AOC_DEFAULT): ('said "hello", twice', "a comment")})

    def test_csv_without_header(self):
        # the first row is skipped unless firstRowIsHeader=false, whatever it holds
        s = self.sim.summary(self.ROWS, ctype="application/csv")[1]
        self.assertEqual(counts(s), (2, 0, 1, 0))
        self.assertEqual(stored(self.sim, dataElement=DE_AMOX), [])
        self.sim.reset()
        s = self.sim.summary(self.ROWS, ctype="application/csv",
                             path="/api/dataValueSets?firstRowIsHeader=false")[1]
        self.assertEqual(counts(s), (3, 0, 1, 0))
        self.assertEqual(len(stored(self.sim, dataElement=DE_AMOX)), 1)

    def test_csv_schemes_data_set_and_content_types(self):
        body = "AMOX250,202401,FAC-0042,CONSUMED,DONOR,5\nORS1L,202401,FAC-0042,,,6\n"
        s = self.sim.summary(body, ctype="application/csv",
                             path="/api/dataValueSets?firstRowIsHeader=false&idScheme=CODE"
                                  "&dataSet=LMIS_MONTHLY&dataSetIdScheme=CODE")[1]
        self.assertEqual(counts(s), (2, 0, 0, 0))
        got = {(v["dataElement"], v["categoryOptionCombo"], v["attributeOptionCombo"])
               for v in self.sim.values()}
        self.assertEqual(got, {(DE_AMOX, COC_CONSUMED, AOC_DONOR),
                               (DE_ORS, COC_DEFAULT, AOC_DEFAULT)})
        # the dataSet import option reaches the CSV import from 2.39 (E7600 when unknown)
        s = self.sim.summary(body, ctype="application/csv",
                             path="/api/dataValueSets?firstRowIsHeader=false&idScheme=CODE"
                                  "&dataSet=NOPE")[1]
        self.assertEqual((s["status"], s["conflicts"][0]["errorCode"]), ("ERROR", "E7600"))
        # an empty value column over a stored value deletes it
        s = self.sim.summary("ORS1L,202401,FAC-0042,,,\n", ctype="application/csv",
                             path="/api/dataValueSets?firstRowIsHeader=false&idScheme=CODE")[1]
        self.assertEqual(counts(s), (0, 0, 0, 1))
        # text/csv has no handler in DataValueSetController
        self.assertEqual(self.sim.post(body, ctype="text/csv")[0], 415)

    def test_csv_2_36(self):
        sim = self.release("2.36")
        status, s, env = sim.summary(self.HEADER + self.ROWS, ctype="application/csv")
        self.assertEqual((status, env, s["status"], counts(s)), (200, None, "WARNING",
                                                                  (3, 0, 1, 0)))


class IdSchemeTest(SimTestCase):
    def test_json_schemes(self):
        payload = {"period": "202401", "orgUnit": "FAC-0042", "dataSet": "LMIS_MONTHLY",
                   "attributeOptionCombo": "GOV",
                   "dataValues": [{"dataElement": "AMOX250", "categoryOptionCombo": "CONSUMED",
                                   "value": "1"}]}
        s = self.sim.summary(payload, path="/api/dataValueSets?dataElementIdScheme=CODE"
                             "&orgUnitIdScheme=CODE&categoryOptionComboIdScheme=code"
                             "&dataSetIdScheme=CODE")[1]
        self.assertEqual(counts(s), (1, 0, 0, 0), s)
        self.assertEqual(s["importOptions"]["idSchemes"],
                         {"dataElementIdScheme": "CODE", "orgUnitIdScheme": "CODE",
                          "categoryOptionComboIdScheme": "CODE", "dataSetIdScheme": "CODE"})
        # names, from the payload
        payload = {"period": "202402", "orgUnit": "Kalonga Health Centre", "idScheme": "NAME",
                   "dataValues": [{"dataElement": "Amoxicillin 250mg",
                                   "categoryOptionCombo": "Consumed", "value": "2"}]}
        self.assertEqual(counts(self.sim.summary(payload)[1]), (1, 0, 0, 0))
        # the payload's idScheme beats the URL's dataElementIdScheme
        # (DataValueSet.getDataElementIdSchemeProperty before ImportOptions)
        payload = {"period": "202403", "orgUnit": "FAC-0042", "idScheme": "CODE",
                   "dataValues": [{"dataElement": "AMOX250", "value": "3"}]}
        s = self.sim.summary(payload, path="/api/dataValueSets?dataElementIdScheme=UID")[1]
        self.assertEqual(counts(s), (1, 0, 0, 0), s)
        self.assertEqual(len(stored(self.sim, dataElement=DE_AMOX)), 3)
        # a UID where codes are expected is unknown
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "dataValues": [
            {"dataElement": DE_AMOX, "value": "1"}]},
            path="/api/dataValueSets?dataElementIdScheme=CODE")[1]
        self.assertConflict(s, "E7610", [0], "dataElement", DE_AMOX)

    def test_adx_schemes(self):
        doc = adx(['<group orgUnit="%s" period="2024-01-01/P1M" dataSet="%s">'
                   '<dataValue dataElement="%s" categoryOptionCombo="%s" value="35"/>'
                   '<dataValue dataElement="%s" lH5Zs0p3oGD="Cn6pWx3Hq5C" value="4"/>'
                   '<dataValue dataElement="%s" value="3"/></group>'
                   % (OU, DS, DE_ORS, COC_SOH, DE_AMOX, DE_REMARKS)])
        status, s, _ = self.sim.summary(doc, path="/api/dataValueSets?idScheme=UID",
                                        ctype="application/adx+xml")
        self.assertEqual(s["importOptions"]["idSchemes"], {"idScheme": "UID"})
        # REMARKS is TEXT: without an annotation it is an ADX conflict
        self.assertEqual((status, counts(s)), (200, (2, 0, 1, 0)))
        got = {(v["dataElement"], v["categoryOptionCombo"]) for v in self.sim.values()}
        self.assertEqual(got, {(DE_ORS, COC_SOH), (DE_AMOX, COC_CONSUMED)})
        # per type: org unit by name, the rest by code (ADX's default)
        doc = adx(['<group orgUnit="Mbeya Road Dispensary" period="2024-01-01/P1M" '
                   'dataSet="LMIS_MONTHLY"><dataValue dataElement="AMOX250" '
                   'STOCK_MEASURE="RECEIVED" value="8"/></group>'])
        s = self.sim.summary(doc, path="/api/dataValueSets?orgUnitIdScheme=NAME",
                             ctype="application/adx+xml")[1]
        self.assertEqual(counts(s), (1, 0, 0, 0), s)
        self.assertEqual(len(stored(self.sim, orgUnit=OU2)), 1)


class StrictTest(SimTestCase):
    def test_strict_options(self):
        base = {"period": "202401", "orgUnit": OU3, "dataValues": [
            {"dataElement": DE_OPD, "value": "3"}]}
        # by default a data element outside the data set and an org unit without it are fine
        self.assertEqual(counts(self.sim.summary(dict(base, dataSet=DS))[1]), (1, 0, 0, 0))
        s = self.sim.summary(dict(base, dataSet=DS),
                             path="/api/dataValueSets?strictDataElements=true")[1]
        c = self.assertConflict(s, "E7633", [0], "dataElement", DE_OPD)
        self.assertEqual(c["objects"], {"dataElement": DE_OPD, "dataSet": DS})
        s = self.sim.summary(base, path="/api/dataValueSets?strictOrganisationUnits=true")[1]
        self.assertConflict(s, "E7636", [0], "orgUnit")
        s = self.sim.summary(base, path="/api/dataValueSets?requireCategoryOptionCombo=true")[1]
        self.assertConflict(s, "E7630", [0], "categoryOptionCombo")
        s = self.sim.summary(dict(base, dataValues=[{"dataElement": DE_OPD, "value": "3",
                                                     "categoryOptionCombo": COC_SOH}]),
                             path="/api/dataValueSets?strictCategoryOptionCombos=true")[1]
        self.assertConflict(s, "E7634", [0], "categoryOptionCombo")
        s = self.sim.summary(dict(base, period="2024W3"),
                             path="/api/dataValueSets?strictPeriods=true")[1]
        self.assertConflict(s, "E7632", [0], None)

    def test_fixture_setting(self):
        meta = json.loads(json.dumps(METADATA))
        meta["settings"] = {"strictDataElements": True}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(meta, f)
        try:
            sim = self.start(metadata=f.name)
            s = sim.summary({"period": "202401", "orgUnit": OU, "dataSet": DS, "dataValues": [
                {"dataElement": DE_OPD, "value": "3"}, {"dataElement": DE_AMOX, "value": "3"}]})[1]
            self.assertEqual(counts(s), (1, 0, 1, 0))
            self.assertConflict(s, "E7633", [0], "dataElement", DE_OPD)
        finally:
            os.unlink(f.name)


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

        # CREATE over stored values: ignored and rejected, but no conflict: SUCCESS
        status, s, _ = self.sim.summary(payload, path="/api/dataValueSets?importStrategy=CREATE")
        self.assertEqual((status, s["status"], counts(s), s["conflicts"]),
                         (200, "SUCCESS", (0, 0, n, 0), []))
        self.assertEqual(s["rejectedIndexes"], list(range(n)))

        status, s, _ = self.sim.summary(payload, path="/api/dataValueSets?importStrategy=DELETE")
        self.assertEqual((status, counts(s)), (200, (0, 0, 0, n)))
        self.assertEqual(s["importOptions"]["importStrategy"], "DELETE")
        self.assertEqual(self.sim.values(), [])

        status, s, _ = self.sim.summary(payload, path="/api/dataValueSets?importStrategy=UPDATE")
        self.assertEqual((status, s["status"], counts(s)), (200, "SUCCESS", (0, 0, n, 0)))
        self.assertEqual(s["rejectedIndexes"], list(range(n)))
        # a deleted row comes back as imported
        self.assertEqual(counts(self.sim.summary(payload)[1]), (n, 0, 0, 0))
        # "deleted": true deletes; the payload's strategy wins over the URL's
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "strategy": "DELETE",
                              "dataValues": payload["dataValues"][:2]})[1]
        self.assertEqual(counts(s), (0, 0, 0, 2))
        s = self.sim.summary({"period": "202401", "orgUnit": OU, "dataValues": [
            dict(payload["dataValues"][2], deleted=True)]})[1]
        self.assertEqual(counts(s), (0, 0, 0, 1))
        self.assertEqual(len(self.sim.values()), n - 3)

    def test_bad_requests(self):
        status, _, body = self.sim.post("period,orgUnit", ctype="text/plain")
        self.assertEqual(status, 415)
        self.assertEqual(body["httpStatusCode"], 415)
        status, _, body = self.sim.post(fixture_set(), path="/api/dataValueSets?async=true")
        self.assertEqual(status, 409)
        self.assertIn("async", body["message"])
        status, _, body = self.sim.post(fixture_set(), path="/api/dataValueSets?idScheme=ATTRIBUTE:x")
        self.assertEqual(status, 400)
        status, _, body = self.sim.post(fixture_set(),
                                        path="/api/dataValueSets?importStrategy=SOMETIMES")
        self.assertEqual(status, 400)
        self.assertEqual(self.sim.get("/api/nothingHere")[0], 404)
        self.assertEqual(self.sim.request("DELETE", "/api/dataValueSets")[0], 405)
        self.assertEqual(self.sim.values(), [])


class AdxTest(SimTestCase):
    def test_adx_with_codes_and_exploded_category(self):
        doc = adx([
            '<group orgUnit="FAC-0042" period="2024-02-01/P1M" dataSet="LMIS_MONTHLY">'
            '<dataValue dataElement="ORS1L" STOCK_MEASURE="CONSUMED" value="35"/>'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="RECEIVED" value="120">'
            '<annotation>checked</annotation></dataValue>'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="NOPE" value="1"/>'
            '<dataValue dataElement="AMOX250" AGE_GROUP="U5" value="1"/>'
            '<dataValue dataElement="NOPE" value="1"/>'
            '<dataValue dataElement="AMOX250" categoryOptionCombo="STOCK_ON_HAND" value="x"/>'
            '</group>',
            # the start need not be the first day: the period that holds it
            '<group orgUnit="FAC-0043" period="2024-01-15/P1M" dataSet="LMIS_MONTHLY">'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="1"/></group>',
            '<group orgUnit="FAC-0043" period="2024-12-30/P7D" dataSet="LMIS_MONTHLY">'
            '<dataValue dataElement="AMOX250" STOCK_MEASURE="STOCK_ON_HAND" value="9"/></group>'])
        status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
        self.assertEqual(status, 409, s)
        self.assertEqual(s["status"], "WARNING")
        # 4 stored; E7619 for "x" (index 2 among the values the ADX stage let through);
        # three ADX conflicts, legacy shaped, counted ignored, without indexes
        self.assertEqual(counts(s), (4, 0, 4, 0))
        self.assertEqual(s["rejectedIndexes"], [2])
        self.assertConflict(s, "E7619", [2], "value", "AMOX250")
        adx_conflicts = sorted(c["value"] for c in s["conflicts"] if "errorCode" not in c)
        self.assertEqual(adx_conflicts, [
            "Category combo Stock measures must have Stock measure",
            "Invalid attributes: {STOCK_MEASURE=NOPE}",
            "No data element matching code 'NOPE'"])
        got = {(v["dataElement"], v["period"], v["orgUnit"], v["categoryOptionCombo"],
                v["value"]) for v in self.sim.values()}
        self.assertEqual(got, {(DE_ORS, "202402", OU, COC_CONSUMED, "35"),
                               (DE_AMOX, "202402", OU, "qgguc6STNsc", "120"),
                               (DE_AMOX, "202401", OU2, COC_CONSUMED, "1"),
                               (DE_AMOX, "2025W1", OU2, COC_SOH, "9")})

    def test_adx_durations(self):
        cases = [("2024-01-03/P7D", "2024WedW1"), ("2024-01-04/P7D", "2024ThuW1"),
                 ("2023-12-30/P7D", "2024SatW1"), ("2023-12-31/P7D", "2024SunW1"),
                 ("2024-01-15/P14D", "2024BiW2"), ("2024-04-01/P6M", "2024AprilS1"),
                 ("2024-11-01/P6M", "2025NovS1"), ("2024-05-01/P6M", "2024NovS2"),
                 ("2024-07-01/P6M", "2024S2"), ("2024-11-01/P1Y", "2025Nov"),
                 ("2024-07-01/P1Y", "2024July"), ("2024-03-01/P2M", "202402B"),
                 ("2024-05-01/P3M", "2024Q2"), ("2024-02-29/P1D", "20240229")]
        groups = ['<group orgUnit="FAC-0042" period="%s" dataSet="LMIS_MONTHLY">'
                  '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="1"/></group>'
                  % p for p, _ in cases]
        status, s, _ = self.sim.summary(adx(groups), ctype="application/adx+xml")
        self.assertEqual((status, counts(s)), (200, (len(cases), 0, 0, 0)), s)
        self.assertEqual(sorted(v["period"] for v in self.sim.values()),
                         sorted(iso for _, iso in cases))
        # 2.36: P6M from July is FinancialJuly, P6M from January is Yearly; no P14D
        sim = self.release("2.36")
        for p, iso in (("2024-07-01/P6M", "2024July"), ("2024-01-01/P6M", "2024"),
                       ("2024-01-03/P7D", "2024W1")):
            body = sim.post(adx(['<group orgUnit="FAC-0042" period="%s" dataSet="LMIS_MONTHLY">'
                                 '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" '
                                 'value="1"/></group>' % p]), ctype="application/adx+xml")[2]
            self.assertIn('imported="1"', body, p)
            self.assertIn(iso, [v["period"] for v in sim.values()])
        body = sim.post(adx(['<group orgUnit="FAC-0042" period="2024-01-01/P14D" '
                             'dataSet="LMIS_MONTHLY"><dataValue dataElement="AMOX250" '
                             'STOCK_MEASURE="CONSUMED" value="1"/></group>']),
                        ctype="application/adx+xml")[2]
        self.assertIn("P14D is not a supported duration type", body)

    def test_bad_periods_fail_the_whole_import(self):
        for period, msg in (("2024-01-02/P7D", "2024-01-02/P7D is invalid weekly type"),
                            ("2024-01-01/P12M", "P12M is not a supported duration type"),
                            ("2024-02-01/P6M", "2024-02-01/P6M is invalid sixmonthly type"),
                            ("2024-01-01", "2024-01-01 not in valid <date>/<duration> format")):
            doc = adx(['<group orgUnit="FAC-0042" period="2024-01-01/P1M" dataSet="LMIS_MONTHLY">'
                       '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="1"/>'
                       '</group>',
                       '<group orgUnit="FAC-0042" period="%s" dataSet="LMIS_MONTHLY">'
                       '<dataValue dataElement="AMOX250" STOCK_MEASURE="CONSUMED" value="1"/>'
                       '</group>' % period])
            status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
            self.assertEqual((status, s["status"], counts(s)), (409, "ERROR", (0, 0, 0, 0)))
            self.assertEqual(s["description"], "Data set import failed within group number: 1")
            self.assertEqual(s["conflicts"], [{"object": "ADX Error", "value": msg}])
        self.assertEqual(self.sim.values(), [])

    def test_doctype_and_garbage_fail_the_import(self):
        laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  '<adx xmlns="urn:ihe:qrph:adx:2015"><group orgUnit="FAC-0042" '
                  'period="2024-01-01/P1M" dataSet="LMIS_MONTHLY"><dataValue dataElement="AMOX250" '
                  'value="1" comment="&lol2;"/></group></adx>')
        for doc in (laughs, "<adx"):
            status, s, _ = self.sim.summary(doc, ctype="application/adx+xml")
            self.assertEqual((status, s["status"]), (409, "ERROR"), doc)
        s = self.sim.summary(laughs, ctype="application/adx+xml")[1]
        self.assertIn("DOCTYPE", s["conflicts"][0]["value"])
        # not ADX at all: no group is found, nothing is imported
        status, s, _ = self.sim.summary('<other xmlns="urn:x"/>', ctype="application/adx+xml")
        self.assertEqual((status, s["status"], counts(s)), (200, "SUCCESS", (0, 0, 0, 0)))
        self.assertEqual(self.sim.values(), [])


class MetadataTest(SimTestCase):
    def test_list_endpoints(self):
        status, _, body = self.sim.get(
            "/api/dataElements?filter=id:in:[%s,%s,xxxxxxxxxxx]&fields=id,code,valueType,"
            "zeroIsSignificant&paging=false" % (DE_AMOX, DE_OPD))
        self.assertEqual(status, 200)
        self.assertEqual(body, {"dataElements": [
            {"id": DE_AMOX, "code": "AMOX250", "valueType": "INTEGER", "zeroIsSignificant": True},
            {"id": DE_OPD, "code": "OPD-VISITS", "valueType": "INTEGER_ZERO_OR_POSITIVE",
             "zeroIsSignificant": False}]})

        status, _, body = self.sim.get("/api/organisationUnits?filter=code:in:[FAC-0042,NOPE]"
                                       "&fields=id,code")
        self.assertEqual(body["organisationUnits"], [{"id": OU, "code": "FAC-0042"}])
        self.assertEqual(body["pager"]["total"], 1)

        status, _, body = self.sim.get("/api/categoryOptionCombos?filter=id:in:[%s,%s,%s]"
                                       "&fields=id,name&paging=false"
                                       % (COC_DEFAULT, AOC_DEFAULT, AOC_GOV))
        self.assertEqual(sorted(c["id"] for c in body["categoryOptionCombos"]),
                         sorted([COC_DEFAULT, AOC_DEFAULT, AOC_GOV]))

        status, _, body = self.sim.get("/api/dataSets?paging=false&fields=id")
        self.assertEqual([d["id"] for d in body["dataSets"]], [DS, DS_FAC, DS_FUND, DS_REASON])

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
            "organisationUnits[id],categoryCombo" % DS_FUND)
        self.assertEqual(status, 200)
        self.assertEqual(body["periodType"], "Monthly")
        self.assertEqual(body["categoryCombo"], {"id": "CcFunding01"})
        self.assertIn({"dataElement": {"id": DE_AMOX, "code": "AMOX250"}},
                      body["dataSetElements"])
        self.assertIn(OU, [o["id"] for o in body["organisationUnits"]])
        self.assertNotIn("name", body)
        status, _, body = self.sim.get("/api/37/system/info")
        self.assertEqual(status, 200)


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

        # A stall delays only its own request: another one is answered while it sleeps.
        stall = 2.0
        result = {}

        def stalled():
            t0 = time.monotonic()
            result["status"] = self.sim.get("/api/system/info?simStall=%g" % stall)[0]
            result["elapsed"] = time.monotonic() - t0
        faults = self.sim.stats()["faults"]
        t = threading.Thread(target=stalled)
        t.start()
        # the simulator counts a stall as a fault just before it starts sleeping
        wait_until(lambda: self.sim.stats()["faults"] > faults,
                   what="the stalled request to reach the simulator")
        t0 = time.monotonic()
        self.assertEqual(self.sim.get("/api/system/info")[0], 200)
        self.assertTrue(t.is_alive(), "the stalled request ended before the other one did")
        # not queued behind the stall: well under it, with room for ASan on a busy machine
        self.assertLess(time.monotonic() - t0, stall / 2)
        t.join(stall + 10)
        self.assertEqual(result["status"], 200)
        self.assertGreaterEqual(result["elapsed"], stall - 0.05)

        # the stall is the point here: the client gives up long before it ends
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

        stall = 1.0
        self.sim.request("POST", "/admin/faults", body={"stall_seconds": stall, "stall_count": 1},
                         auth=None)
        faults = self.sim.stats()["faults"]
        t0 = time.monotonic()
        self.assertEqual(self.sim.post(payload)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, stall - 0.05)
        self.assertEqual(self.sim.stats()["faults"], faults + 1)
        # stall_count 1: the next import is not stalled (a stalled one takes >= stall)
        t0 = time.monotonic()
        self.assertEqual(self.sim.post(payload)[0], 200)
        self.assertLess(time.monotonic() - t0, stall)
        self.assertEqual(self.sim.stats()["faults"], faults + 1)

        self.sim.request("POST", "/admin/faults", body={"fail_status": 503, "fail_count": 5},
                         auth=None)
        self.sim.request("POST", "/admin/faults", body={"clear": True}, auth=None)
        self.assertEqual(self.sim.post(payload)[0], 200)

        stats = self.sim.stats()
        self.assertEqual(stats["imports"], 8)
        self.assertEqual(stats["values"], len(payload["dataValues"]))
        self.assertGreater(stats["requests"], 8)

        self.sim.reset()
        self.assertEqual(self.sim.values(), [])
        stats = self.sim.stats()
        self.assertEqual((stats["imports"], stats["values"]), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
