"""`hibus mapping pull`: a channel's mapping built or refreshed from the metadata of
the DHIS2 simulator, the diff it prints, --write, and its errors."""

import copy
import csv
import io
import json
import os
import re
import unittest

import harness
from harness import DHIS2Sim

NO_DB = "postgresql://nobody@127.0.0.1:1/none"
SIM = BIG = None
ATTR = "AttrLmisCd1"  # the attribute that holds the LMIS facility code in BIG
OU_HEADER = "code,uid\n"
ITEMS_HEADER = "item,measure,data_element,category_option_combo\n"


def national_items():
    """The rows mappings/national.yaml gives, as items_csv rows."""
    rows = set()
    for item, de in DHIS2Sim.DATA_ELEMENTS.items():
        rows.add((item, "", de, ""))
        for measure, coc in DHIS2Sim.MEASURES.items():
            rows.add((item, measure, de, coc))
    return rows


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        r = list(csv.reader(f))
    return r[0], set(tuple(x) for x in r[1:])


def big_fixture(path):
    """The sample fixture, with: FAC-0043 under a new UID (as if recreated in DHIS2),
    an attribute holding LMIS codes on the three facilities, and 120 more facilities
    in the LMIS data set (more than two pages of 50)."""
    src = os.path.join(harness.SOURCE_DIR, "tests", "dhis2-sim", "metadata.json")
    with open(src, encoding="utf-8") as f:
        md = json.load(f)
    md = copy.deepcopy(md)
    lmis = {"cLq0tI1jksz": "LMIS-42", "p88r7fYkDc9": "LMIS-43", "kVncLVPFjTT": "LMIS-100"}
    md["organisationUnits"].append({"id": "Ctl00000001", "code": "FAC-CTL",
                                    "name": "Bell\u0007 and \u001b[31mred"})
    for ou in md["organisationUnits"]:
        if ou["id"] in lmis:
            ou["attributeValues"] = [{"attribute": {"id": ATTR}, "value": lmis[ou["id"]]}]
        if ou["id"] == "p88r7fYkDc9":
            ou["id"] = "NewFac0043A"
    extra = []
    for i in range(120):
        extra.append({"id": "Fx%09d" % i, "code": "FAC-%04d" % (2000 + i),
                      "name": "Extra facility %d" % i})
    md["organisationUnits"] += extra
    for ds in md["dataSets"]:
        ds["organisationUnits"] = ["NewFac0043A" if u == "p88r7fYkDc9" else u
                                   for u in ds["organisationUnits"]]
        if ds["id"] == DHIS2Sim.DATA_SET:
            ds["organisationUnits"] += [o["id"] for o in extra]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(md, f)
    return path


def setUpModule():
    global SIM, BIG
    SIM = DHIS2Sim().start()
    d = os.path.join(harness.work_dir(), "pull-fixture")
    os.makedirs(d, exist_ok=True)
    BIG = DHIS2Sim(metadata=big_fixture(os.path.join(d, "metadata.json")), name="bigsim").start()


def tearDownModule():
    harness.stop_all(SIM, BIG)


def channel(routes, mapping="pulled"):
    return {"name": "stock", "priority": 10,
            "match": {"path": "/lmis/stock", "methods": ["POST"],
                      "content_types": ["application/json"]},
            "allow": {"roles": ["lmis"]}, "mode": "sync",
            "transform": {"reader": "lmis-report", "mapping": mapping,
                          "writer": "dhis2-datavalueset"},
            "unmapped": "reject", "routes": routes}


def setup(name, files, routes=None, sim=None, mapping="pulled"):
    """A configuration with one channel "stock" using mappings/pulled.yaml."""
    routes = routes if routes is not None else [harness.sim_route(sim or SIM)]
    h = harness.Hibus(NO_DB, channels=[channel(routes, mapping)],
                      settings={"mappings": "mappings"},
                      files={"mappings/" + k: v for k, v in files.items()},
                      clients=[harness.client("lmis-national", ["lmis"], "pull-secret")],
                      name=name)
    h.write_config()
    return h


def mpath(h, name):
    return os.path.join(h.conf_dir, "mappings", name)


def snapshot(h):
    d = os.path.join(h.conf_dir, "mappings")
    out = {}
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n), "rb") as f:
            out[n] = f.read()
    return out


def pull(h, *extra):
    return h.cli("mapping", "pull", "--channel", "stock", "-c", h.config_path, *extra)


EMPTY = ("data_set: %s\nperiod_type: Monthly\norg_units_csv: ou.csv\nitems_csv: items.csv\n"
         % DHIS2Sim.DATA_SET)


class MappingPull(unittest.TestCase):

    def check_ok(self, h):
        r = h.cli("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_empty_mapping_becomes_the_national_tables(self):
        h = setup("empty", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                            "items.csv": ITEMS_HEADER})
        before = snapshot(h)
        r = pull(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(snapshot(h), before, "a dry run changed a file")
        self.assertIn("dry run: nothing written", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^  \+ FAC-0042: cLq0tI1jksz \(Kalonga Health Centre\) "
                                   r"in .*ou\.csv$")
        self.assertRegex(r.stdout, r"(?m)^  \+ AMOX250 stock_on_hand: PcAgkuk85UK "
                                   r"\(Stock on hand\) in .*items\.csv$")
        self.assertIn("org units: 3 added, 0 changed, 0 removed", r.stdout)
        self.assertIn("data elements: 4 added", r.stdout)
        self.assertIn("category option combos: 32 added", r.stdout)
        # the district is not in the data set
        self.assertNotIn("DIST-01", r.stdout)

        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration OK after the pull", r.stdout)
        header, rows = read_rows(mpath(h, "ou.csv"))
        self.assertEqual(header, ["code", "uid"])
        self.assertEqual(rows, set(DHIS2Sim.ORG_UNITS.items()))
        header, rows = read_rows(mpath(h, "items.csv"))
        self.assertEqual(header, ITEMS_HEADER.strip().split(","))
        self.assertEqual(rows, national_items())
        self.check_ok(h)
        # a second pull finds nothing to do
        r = pull(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nothing to write", r.stdout)

    def test_partial_national_yaml_is_completed_in_place(self):
        src = os.path.join(harness.SOURCE_DIR, "mappings")
        with open(os.path.join(src, "national.yaml"), encoding="utf-8") as f:
            yaml = f.read()
        yaml, n = re.subn(r"(?m)^  ZINC20: GHgQT4Rrg3i +# Zinc 20mg\n", "", yaml)
        self.assertEqual(n, 1, "mappings/national.yaml changed: adapt this test")
        yaml = yaml.replace("FAC-0100: kVncLVPFjTT", "FAC-0100: AAAAAAAAAAA")
        # a shared measure whose option combo DHIS2 knows under another UID
        yaml = yaml.replace("  received: qgguc6STNsc\n", "  # a stale one\n"
                            "  received: BBBBBBBBBBC\n")
        files = {"pulled.yaml": yaml,
                 "national-facilities.csv": "code,uid\nFAC-0042,cLq0tI1jksz\n"
                                            "FAC-0999,BBBBBBBBBBB\nHQ,Z2bdC37H4KV\n"}
        h = setup("partial", files)
        r = pull(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertRegex(out, r"(?m)^  \+ FAC-0043: p88r7fYkDc9 \(Mbeya Road Dispensary\) "
                              r"in .*national-facilities\.csv$")
        self.assertRegex(out, r"(?m)^  ~ FAC-0100: AAAAAAAAAAA -> kVncLVPFjTT "
                              r"\(District Hospital\) in .*pulled\.yaml$")
        # neither its code nor its UID is in DHIS2: removed
        self.assertRegex(out, r"(?m)^  - FAC-0999: BBBBBBBBBBB \(DHIS2 knows neither")
        # the source's own code for an org unit DHIS2 has: kept
        self.assertNotIn("HQ", out)
        self.assertIn("org units: 1 added, 1 changed, 1 removed, 1 unchanged, 1 kept", out)
        self.assertRegex(out, r"(?m)^  \+ ZINC20: GHgQT4Rrg3i \(Zinc 20mg\) in .*pulled\.yaml$")
        for item in ("AMOX250", "ORS1L", "ACT-AL20"):
            self.assertRegex(out, r"(?m)^  ~ %s received: BBBBBBBBBBC -> qgguc6STNsc \(Received\)"
                             % item)
        self.assertIn("category option combos: 8 added, 3 changed", out)

        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(mpath(h, "pulled.yaml"), encoding="utf-8") as f:
            new = f.read()
        # changed where it is written, comments kept, the new item after the others
        self.assertIn("  FAC-0100: kVncLVPFjTT        # District Hospital\n", new)
        self.assertIn("  # a stale one\n  received: qgguc6STNsc\n", new)
        self.assertIn("data_set: uRfFkKfeb3Q          # LMIS monthly stock report\n", new)
        self.assertIn("  ACT-AL20: rTAGiDO5psX        # Artemether-lumefantrine 20/120\n"
                      "  ZINC20: GHgQT4Rrg3i  # Zinc 20mg\n", new)
        header, rows = read_rows(mpath(h, "national-facilities.csv"))
        self.assertEqual(rows, {("FAC-0042", "cLq0tI1jksz"), ("HQ", "Z2bdC37H4KV"),
                                ("FAC-0043", "p88r7fYkDc9")})
        self.check_ok(h)
        r = pull(h)
        self.assertIn("nothing to write", r.stdout)

    def test_uid_changed_in_dhis2_shows_as_changed(self):
        h = setup("changed", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER + "FAC-0043,"
                              "p88r7fYkDc9\nFAC-0042,cLq0tI1jksz\n", "items.csv": ITEMS_HEADER},
                  sim=BIG)
        r = pull(h, "--page-size", "50")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^  ~ FAC-0043: p88r7fYkDc9 -> NewFac0043A "
                                   r"\(Mbeya Road Dispensary\) in .*ou\.csv$")
        r = pull(h, "--write", "--page-size", "50")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(mpath(h, "ou.csv"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        # rows stay in their order; the changed one where it was
        self.assertEqual(lines[:3], ["code,uid", "FAC-0043,NewFac0043A", "FAC-0042,cLq0tI1jksz"])
        self.check_ok(h)

    def test_paging(self):
        h = setup("paging", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                             "items.csv": ITEMS_HEADER}, sim=BIG)
        before = BIG.stderr_text().count("GET /api/organisationUnits ")
        r = pull(h, "--write", "--page-size", "50")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # 123 org units: three pages, no more requests
        self.assertEqual(BIG.stderr_text().count("GET /api/organisationUnits ") - before, 3,
                         BIG.stderr_text()[-3000:])
        _, rows = read_rows(mpath(h, "ou.csv"))
        self.assertEqual(len(rows), 123)  # FAC-CTL is in no data set
        self.assertIn(("FAC-2119", "Fx000000119"), rows)
        self.assertIn(("FAC-0043", "NewFac0043A"), rows)

    def test_org_units_by_attribute_value(self):
        yaml = EMPTY + "pull: { org_unit_attribute: %s }\n" % ATTR
        h = setup("attr", {"pulled.yaml": yaml, "ou.csv": OU_HEADER, "items.csv": ITEMS_HEADER},
                  sim=BIG)
        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        _, rows = read_rows(mpath(h, "ou.csv"))
        self.assertEqual(rows, {("LMIS-42", "cLq0tI1jksz"), ("LMIS-43", "NewFac0043A"),
                                ("LMIS-100", "kVncLVPFjTT")})
        self.assertIn("note: 120 org units in DHIS2 have no attribute value for attribute "
                      + ATTR, r.stdout)
        self.check_ok(h)

    def test_names_from_dhis2_cannot_drive_the_terminal(self):
        h = setup("ctl", {"pulled.yaml": "org_units_csv: ou.csv\n", "ou.csv": OU_HEADER},
                  sim=BIG)
        r = pull(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("  + FAC-CTL: Ctl00000001 (Bell\\x07 and \\x1B[31mred)", r.stdout)
        self.assertNotIn("\x1b", r.stdout)

    def test_attribute_must_be_a_uid(self):
        h = setup("badattr", {"pulled.yaml": EMPTY + "pull: { org_unit_attribute: lmis code }\n",
                              "ou.csv": OU_HEADER, "items.csv": ITEMS_HEADER})
        r = h.cli("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"pulled\.yaml:\d+:\d+: pull\.org_unit_attribute: "
                                   r"\"lmis code\" is not a DHIS2 UID")

    def test_errors(self):
        h = setup("errs", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER, "items.csv": ITEMS_HEADER})
        r = h.cli("mapping", "pull", "--channel", "nope", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn('no channel "nope"', r.stderr)
        r = h.cli("mapping", "pull", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--channel NAME is required", r.stderr)
        r = h.cli("mapping", "push")
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown subcommand "push"', r.stderr)
        r = h.cli("mapping", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: hibus mapping pull", r.stdout)

        http = setup("nodhis2", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                                 "items.csv": ITEMS_HEADER},
                     routes=[{"name": "web", "mediator": "http", "url": SIM.url + "/x",
                              "primary": True, "body": "transformed"}])
        r = pull(http)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('channel "stock" has no dhis2 route', r.stderr)

        down = harness.sim_route(SIM)
        down["url"] = "http://127.0.0.1:%d" % harness.free_port()
        h2 = setup("down", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                            "items.csv": ITEMS_HEADER}, routes=[down])
        before = snapshot(h2)
        r = pull(h2, "--write")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("could not reach DHIS2", r.stderr)
        self.assertEqual(snapshot(h2), before)

        bad = harness.sim_route(SIM, auth=None)
        bad["auth"] = {"basic": {"username": DHIS2Sim.USER, "password": "wrong-password"}}
        h3 = setup("unauth", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                              "items.csv": ITEMS_HEADER}, routes=[bad])
        r = pull(h3, "--write")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("DHIS2 answered 401", r.stderr)
        self.assertIn('Check the credentials in the auth: of route "dhis2"', r.stderr)

        # a data set DHIS2 does not know
        h4 = setup("nods", {"pulled.yaml": EMPTY.replace(DHIS2Sim.DATA_SET, "AAAAAAAAAAA"),
                            "ou.csv": OU_HEADER, "items.csv": ITEMS_HEADER})
        r = pull(h4)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("DHIS2 has no data set AAAAAAAAAAA", r.stderr)

    def test_without_data_set_and_not_a_dhis2(self):
        # no data set: every org unit with a code is a candidate, no item is added
        h = setup("nods", {"pulled.yaml": "org_units_csv: ou.csv\nitems:\n"
                                          "  AMOX250: PRIVrEScHcE\n",
                           "ou.csv": OU_HEADER})
        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        _, rows = read_rows(mpath(h, "ou.csv"))
        self.assertEqual(rows, set(DHIS2Sim.ORG_UNITS.items()) | {("DIST-01", "Z2bdC37H4KV")})
        self.assertIn("data elements: 0 added, 0 changed, 0 removed, 1 unchanged", r.stdout)
        self.check_ok(h)

        target = harness.Target().start()
        try:
            route = harness.sim_route(SIM)
            route["url"] = target.url
            h2 = setup("notdhis2", {"pulled.yaml": "org_units_csv: ou.csv\n",
                                    "ou.csv": OU_HEADER}, routes=[route])
            r = pull(h2)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn('the answer to GET /api/organisationUnits of route "dhis2" has no '
                          '"organisationUnits" list', r.stderr)
            self.assertIn("Is %s a DHIS2?" % target.url, r.stderr)
        finally:
            harness.stop_all(target)

    def test_flow_style_tables_are_left_to_the_user(self):
        # no data set: no items to add; the org units cannot be added in flow style
        yaml = "period_type: Monthly\norg_units: { FAC-0042: cLq0tI1jksz }\n"
        h = setup("flow", {"pulled.yaml": yaml})
        before = snapshot(h)
        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^  \+ FAC-0043: p88r7fYkDc9 \(Mbeya Road Dispensary\) "
                                   r"in .*pulled\.yaml \[not written: see the notes\]$")
        self.assertRegex(r.stdout, r'note: org_units: of ".*pulled\.yaml" is not a block table '
                                   r'with entries: add "FAC-0043" by hand, or name an '
                                   r'org_units_csv: file')
        self.assertIn("nothing to write: the changes above must be made by hand", r.stdout)
        self.assertEqual(snapshot(h), before)

    def test_route_choice_and_usage(self):
        files = {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER, "items.csv": ITEMS_HEADER}
        web = {"name": "web", "mediator": "http", "url": SIM.url + "/x", "primary": True,
               "body": "transformed"}
        h = setup("routes", files, routes=[web, harness.sim_route(SIM, primary=False)])
        # the primary route is not a dhis2 route: the dhis2 one is asked
        r = pull(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('(channel "stock", route "dhis2")', r.stdout)
        r = pull(h, "--route", "web")
        self.assertEqual(r.returncode, 2)
        self.assertIn('route "web" of channel "stock" is not a dhis2 route', r.stderr)
        r = pull(h, "--route", "nosuch")
        self.assertEqual(r.returncode, 2)
        self.assertIn('channel "stock" has no route "nosuch"', r.stderr)
        r = pull(h, "--page-size", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--page-size expects a number of objects a page from 1 to 10000", r.stderr)
        r = pull(h, "extra")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unexpected operand", r.stderr)

        plain = harness.channel("plain", "/plain", SIM.url + "/x")
        h2 = harness.Hibus(NO_DB, channels=[plain], name="plain",
                           clients=[harness.client("lmis-national", ["lmis"], "pull-secret")])
        h2.write_config()
        r = h2.cli("mapping", "pull", "--channel", "plain", "-c", h2.config_path)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('channel "plain" uses no mapping', r.stderr)
        with open(h2.config_path, "a", encoding="utf-8") as f:
            f.write("no_such_key: 1\n")
        r = h2.cli("mapping", "pull", "--channel", "plain", "-c", h2.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('unknown key "no_such_key"', r.stderr)

    def test_result_that_does_not_load_is_put_back(self):
        # DHIS2 has an org unit whose code is longer than a mapping accepts
        src = os.path.join(harness.SOURCE_DIR, "tests", "dhis2-sim", "metadata.json")
        with open(src, encoding="utf-8") as f:
            md = json.load(f)
        md["organisationUnits"].append({"id": "LongCode001", "code": "X" * 9000, "name": "Long"})
        for ds in md["dataSets"]:
            if ds["id"] == DHIS2Sim.DATA_SET:
                ds["organisationUnits"].append("LongCode001")
        d = os.path.join(harness.work_dir(), "long-fixture")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "metadata.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(md, f)
        sim = DHIS2Sim(metadata=path, name="longsim").start()
        try:
            h = setup("putback", {"pulled.yaml": EMPTY, "ou.csv": OU_HEADER,
                                  "items.csv": ITEMS_HEADER}, sim=sim)
            before = snapshot(h)
            r = pull(h, "--write")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("field is too long", r.stderr)
            self.assertIn("the mapping was put back as it was: the configuration did not load "
                          "with the new tables", r.stderr)
            self.assertEqual(snapshot(h), before)
            self.assertEqual([n for n in os.listdir(os.path.join(h.conf_dir, "mappings"))
                              if ".pull" in n], [], "a temporary file was left behind")
        finally:
            harness.stop_all(sim)

    def test_token_auth_and_yaml_only_mapping(self):
        # no CSV files and no org_units: table: a new table at the end of the file
        yaml = "data_set: %s\nperiod_type: Monthly\nitems:\n  AMOX250: PRIVrEScHcE\n" % (
            DHIS2Sim.DATA_SET)
        h = setup("yamlonly", {"pulled.yaml": yaml},
                  routes=[harness.sim_route(SIM, auth="token")])
        r = pull(h, "--write")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(mpath(h, "pulled.yaml"), encoding="utf-8") as f:
            new = f.read()
        self.assertIn("\norg_units:\n  FAC-0042: cLq0tI1jksz  # Kalonga Health Centre\n", new)
        # without shared measures: each new item lists its own
        self.assertRegex(new, r"(?m)^  ORS1L: \{ data_element: YpYGky8q06j, measures: "
                              r"\{ opening_balance: XIGEYSslBo4, .*\} \}  # ORS sachet 1L$")
        # AMOX250 has no measures: DHIS2's combos for it are said, not added in YAML
        self.assertIn('note: item "AMOX250": category option combo', r.stdout)
        self.check_ok(h)


if __name__ == "__main__":
    unittest.main(verbosity=2)
