"""The console on the admin listener, in a real browser (Debian's chromium, headless,
driven through chromedriver): the live transaction list follows new transactions as
they happen, a transaction page shows DHIS2's import summary and conflicts and lets an
operator re-run it, the channels page draws each channel's hours, the unmapped codes
are listed. Screenshots go to the test's directory, and to $HIBUS_SCREENSHOTS when set
(docs/ keeps the ones made that way)."""

import os
import shutil
import unittest

import harness

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError as e:  # scripts/deps installs python3-selenium
    raise SystemExit("test_console: %s (Debian's python3-selenium; run scripts/deps)" % e)

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
JSON = {"Content-Type": "application/json"}
USERS = {"rita": ("read", "rita-secret-3"), "omar": ("operator", "omar-secret-2")}
GHOST_OU = "Gh0stUnit01"

PG = SIM = TARGET = HB = None
ADMIN_PORT = None
TX = {}


report = harness.stock_report


def post(path, body):
    r = HB.request("POST", path, body=body, auth=AUTH, headers=JSON)
    return r, int(r.headers["x-hibus-transaction"])


def setUpModule():
    global PG, SIM, TARGET, HB, ADMIN_PORT
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()
    TARGET = harness.Target().start()
    ADMIN_PORT = harness.free_port()
    stock = harness.sim_channel("lmis-stock", "/stock", SIM)
    archive = harness.channel("archive", "/archive", TARGET.url + "/archive")
    users = [{"id": k, "name": k.capitalize(), "role": r,
              "password_hash": harness.password_hash(p)} for k, (r, p) in USERS.items()]
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[stock, archive],
                       settings={"mappings": "mappings",
                                 "admin": {"port": ADMIN_PORT, "users": "admin-users.yaml"}},
                       files={"mappings/m.yaml": harness.mapping_doc(
                           org_units=dict(harness.DHIS2Sim.ORG_UNITS, **{"FAC-GHOST": GHOST_OU})),
                              "admin-users.yaml": {"users": users}})
    HB.start()
    for name, path, body in [("ok", "/stock", report("FAC-0042", "2026-10")),
                             ("archive", "/archive", b'{"n": 1}'),
                             ("ghost", "/stock", report("FAC-GHOST", "2026-10")),
                             ("unmapped", "/stock", report("FAC-NOWHERE", "2026-10")),
                             ("ok2", "/stock", report("FAC-0043", "2026-11"))]:
        TX[name] = post(path, body)[1]


def tearDownModule():
    harness.stop_all(HB, TARGET, SIM, PG)


class ConsoleTest(harness.TestCase):

    def setUp(self):
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,900",
                  "--disable-dev-shm-usage"):
            opts.add_argument(a)
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        self.browser = webdriver.Chrome(
            service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
            options=opts)
        self.browser.set_page_load_timeout(30)

    def tearDown(self):
        self.browser.quit()

    def open(self, user, fragment=""):
        # the credentials in the URL answer the 401 of the first page; the browser
        # then sends them with every request to the same origin and realm
        self.browser.get("http://%s:%s@127.0.0.1:%d/%s" % (user, USERS[user][1], ADMIN_PORT,
                                                           fragment))

    def wait(self, what, fn, timeout=15):
        return harness.wait_until(lambda: self._try(fn), timeout=timeout, interval=0.2,
                                  what=what)

    @staticmethod
    def _try(fn):
        try:
            return fn()
        except Exception:  # the element is not there yet, or went stale while redrawn
            return None

    def rows(self):
        return {int(r.get_attribute("data-id")): r.text
                for r in self.browser.find_elements(By.CSS_SELECTOR, "#tx-rows tr[data-id]")}

    def screenshot(self, name):
        path = os.path.join(HB.dir, name)
        self.browser.save_screenshot(path)
        out = os.environ.get("HIBUS_SCREENSHOTS")
        if out:
            shutil.copy(path, os.path.join(out, name))

    def test_live_list(self):
        self.open("rita")
        rows = self.wait("the transaction list", lambda: self.rows() if len(self.rows()) >= 5
                         else None)
        self.assertEqual(sorted(rows), sorted(TX.values()))
        self.assertIn("lmis-stock", rows[TX["ok"]])
        self.assertIn("successful", rows[TX["ok"]])
        self.assertIn("FAC-0042", rows[TX["ok"]])
        self.assertIn("202610", rows[TX["ok"]])
        self.assertIn("failed", rows[TX["ghost"]])
        self.wait("the live mark", lambda: "on" in self.browser.find_element(
            By.ID, "live").get_attribute("class"))
        self.assertIn("Rita (read)", self.browser.find_element(By.ID, "me").text)
        # a new transaction shows up without a reload
        _, tx = post("/archive", b'{"n": 2}')
        line = self.wait("transaction %d in the live list" % tx,
                         lambda: self.rows().get(tx))
        self.assertIn("archive", line)
        self.wait("its final status", lambda: "successful" in self.rows()[tx])
        first = self.browser.find_element(By.CSS_SELECTOR, "#tx-rows tr[data-id]")
        self.assertEqual(int(first.get_attribute("data-id")), tx)
        self.screenshot("console-transactions.png")
        # the filters ask the search
        Select(self.browser.find_element(By.NAME, "status")).select_by_value("failed")
        self.browser.find_element(By.CSS_SELECTOR, "#filters button").click()
        self.wait("the failed ones only", lambda: list(self.rows()) == [TX["ghost"]] or None)

    def test_transaction_page_and_rerun(self):
        self.open("omar", "#/tx/%d" % TX["ghost"])
        page = self.wait("the transaction page", lambda: self.browser.find_element(
            By.ID, "attempts").text and self.browser.find_element(By.TAG_NAME, "main").text)
        self.assertIn("Transaction %d" % TX["ghost"], page)
        self.assertIn("failed", page)
        self.assertIn("DHIS2 import", page)
        self.assertIn("E7603", page)  # the simulator's conflict for the unknown org unit
        self.assertIn(GHOST_OU, page)
        self.assertIn("Request body", page)  # an operator sees bodies
        self.screenshot("console-transaction.png")
        self.browser.find_element(By.ID, "rerun").click()
        note = self.wait("the rerun's answer", lambda: self.browser.find_element(
            By.ID, "rerun-result").text)
        self.assertIn("Re-queued", note)
        harness.wait_until(lambda: PG.count("attempts", "transaction_id = %d" % TX["ghost"]) == 2,
                           timeout=20, what="the second attempt")

    def test_read_role_has_no_rerun_and_no_bodies(self):
        self.open("rita", "#/tx/%d" % TX["ok"])
        page = self.wait("the transaction page", lambda: self.browser.find_element(
            By.ID, "attempts").text and self.browser.find_element(By.TAG_NAME, "main").text)
        self.assertIn("imported", page)
        self.assertEqual(self.browser.find_elements(By.ID, "rerun"), [])
        self.assertNotIn("Request body", page)
        self.assertIn("hidden: your role is read", page)

    def test_channels_and_unmapped(self):
        self.open("rita", "#/channels")
        card = self.wait("the channel cards", lambda: self.browser.find_element(
            By.CSS_SELECTOR, '.card[data-channel="lmis-stock"]'))
        self.assertIn("sync", card.text)
        self.assertIn("dhis2", card.text)
        self.wait("the chart", lambda: card.find_elements(By.CSS_SELECTOR, "svg rect.received"))
        self.assertTrue(card.find_elements(By.CSS_SELECTOR, "svg rect.failed"))
        self.assertRegex(card.find_element(By.CSS_SELECTOR, ".last-hour").text,
                         r"^\d+ ended, \d+ failed")
        self.screenshot("console-channels.png")
        self.browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="unmapped"]').click()
        table = self.wait("the unmapped codes", lambda: self.browser.find_element(
            By.ID, "unmapped").text)
        self.assertIn("FAC-NOWHERE", table)
        self.assertIn("org_unit", table)
        self.screenshot("console-unmapped.png")

    def test_scripts_only_from_hibus(self):
        # the console's pages forbid scripts from anywhere else
        r = harness.http_request(ADMIN_PORT, "GET", "/", auth=("rita", USERS["rita"][1]))
        self.assertEqual(r.status, 200)
        self.assertIn("default-src 'self'", r.headers["content-security-policy"])
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        self.assertEqual(harness.http_request(ADMIN_PORT, "GET", "/").status, 401)
        self.assertEqual(harness.http_request(ADMIN_PORT, "GET", "/console.js").status, 401)


if __name__ == "__main__":
    unittest.main(verbosity=2)
