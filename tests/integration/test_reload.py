"""SIGHUP reloads the configuration: channel changes apply to the next request and to
the next delivery round (a disabled channel or a lowered max_attempts stops retries),
a configuration with a problem is refused while the running one stays, and every key
of hibus.yaml is applied by a reload or named in the log as waiting for a restart,
as `hibus keys` (the key table) says."""

import copy
import re
import subprocess
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
PG = TARGET = HB = None


def async_channel(name, path, url, **extra):
    ch = harness.channel(name, path, url, timeout="1s", mode="async",
                         retry={"max_attempts": 50, "backoff": {"initial": "100ms", "max": "300ms"}})
    ch.update(extra)
    return ch


def key_rows():
    """(key, "applies" or "restart", example) for each row `hibus keys` prints."""
    out = subprocess.run([harness.hibus_bin(), "keys"], check=True, capture_output=True,
                         text=True).stdout
    rows = [m.groups() for m in
            (re.match(r"\| `([\w.]+)` \| .* \| (applies|restart) \| `([^`]*)` \|", line)
             for line in out.splitlines()) if m]
    if len(rows) < 20:
        raise AssertionError("hibus keys printed %d rows:\n%s" % (len(rows), out))
    return rows


def yaml_value(key, example):
    """The example of a key as a value the running test daemon can reload."""
    if key == "listen.port":
        return harness.free_port()  # the example is ${HIBUS_PORT}, unset here
    if key in ("clients", "channels", "mappings"):
        return "./" + {"clients": "clients.yaml"}.get(key, key)  # the same files, another path
    if example.startswith("["):
        return [v.strip() for v in example.strip("[]").split(",")]
    return int(example) if example.isdigit() else example


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    dead = "http://127.0.0.1:%d/nobody" % harness.free_port()
    HB = harness.Hibus(
        PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
        channels=[harness.channel("alpha", "/alpha", TARGET.url + "/a"),
                  async_channel("stuck", "/stuck", dead),
                  async_channel("stuck2", "/stuck2", dead)],
        settings={"delivery": {"workers": 2, "poll": "200ms", "lease": "10s"}},
        # read once admin.port is set (test_5 sets each key in turn)
        files={"admin-users.yaml": {"users": []}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


class ReloadTest(harness.TestCase):

    def post(self, path):
        return HB.request("POST", path, body=b'{"n": 1}', auth=AUTH,
                          headers={"Content-Type": "application/json"})

    def reload(self, marker):
        """Writes HB.channels out, sends SIGHUP, waits for the log line that says so."""
        HB.reload(marker)

    def channel(self, name):
        return next(c for c in HB.channels if c["name"] == name)

    def test_1_channels_change_on_sighup(self):
        self.assertEqual(self.post("/alpha").status, 200)
        self.assertEqual(self.post("/beta").status, 404)
        self.channel("alpha")["enabled"] = False
        HB.channels.append(harness.channel("beta", "/beta", TARGET.url + "/b"))
        self.reload("configuration reloaded")
        self.assertEqual(self.post("/alpha").status, 404)
        r = self.post("/beta")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(TARGET.requests[-1].path, "/b")

    def test_1b_max_body_applies_on_reload(self):
        # limits.max_body is read per request: a reload applies it, and says nothing of
        # a restart for it (it used to claim one while already applying it)
        body = b'{"n": "' + b"x" * 2000 + b'"}'
        ok = HB.request("POST", "/beta", body=body, auth=AUTH,
                        headers={"Content-Type": "application/json"})
        self.assertEqual(ok.status, 200, ok.body)
        log_before = len(HB.log_text())
        HB.settings.setdefault("limits", {})["max_body"] = "1KiB"
        try:
            self.reload("configuration reloaded")
            r = HB.request("POST", "/beta", body=body, auth=AUTH,
                           headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 413, r.body)
            self.assertNotIn("restart", HB.log_text()[log_before:])
        finally:
            del HB.settings["limits"]["max_body"]
            self.reload("configuration reloaded")

    def test_2_a_bad_configuration_is_refused(self):
        HB.channels.append(harness.channel("broken", "/broken", TARGET.url + "/x",
                                           priority="high"))
        try:
            self.reload("reload refused")
        finally:
            HB.channels.pop()
        text = HB.log_text()
        self.assertRegex(text, r"reload: .*broken\.yaml:\d+:\d+: .*priority")
        # the running configuration still serves
        self.assertEqual(self.post("/beta").status, 200)
        self.assertEqual(self.post("/broken").status, 404)

    # What some keys visibly change at once, checked right after their reload.
    def json_log_now(self, log):
        line = next(ln for ln in log.splitlines() if "configuration reloaded" in ln)
        self.assertTrue(line.startswith("{"), line)

    def redacted_now(self, log):
        r = HB.request("POST", "/beta", body=b'{"n": 1}', auth=AUTH,
                       headers={"Content-Type": "application/json", "X-Token": "t0p"})
        self.assertEqual(r.status, 200, r.body)
        self.assertFalse(TARGET.requests[-1].has_header("x-token"))

    def same_port_serves(self, log):
        self.assertEqual(self.post("/beta").status, 200)  # listen.port waits for a restart

    effects = {"log.format": json_log_now, "redact_headers": redacted_now,
               "listen.port": same_port_serves}

    def test_5_each_key_applies_or_waits_for_a_restart(self):
        original = copy.deepcopy(HB.settings)
        try:
            for key, on_reload, example in key_rows():
                if key.startswith("listen.tls."):
                    continue  # needs real files, both at once: test_tls reloads them
                with self.subTest(key=key):
                    settings = copy.deepcopy(original)
                    node, *path = [settings] + key.split(".")
                    for part in path[:-1]:
                        node = node.setdefault(part, {})
                    value = yaml_value(key, example)
                    current = HB.hibus_yaml()
                    for part in key.split("."):
                        current = current.get(part, {}) if isinstance(current, dict) else {}
                    if value == current:  # the test daemon already runs with the example
                        value = value + 1 if isinstance(value, int) else re.sub(
                            r"^\d+", lambda m: str(int(m.group(0)) + 1), value)
                    node[path[-1]] = value
                    HB.settings = settings
                    start = len(HB.log_text())
                    self.reload("configuration reloaded")
                    said = re.findall(r"reload: ([\w., ]+) changed; that takes effect at the next"
                                      r" restart", HB.log_text()[start:])
                    if on_reload == "restart":
                        self.assertEqual(said, [key])
                    else:
                        self.assertEqual(said, [])
                        self.assertNotIn("restart", HB.log_text()[start:])
                    if key in self.effects:
                        self.effects[key](self, HB.log_text()[start:])
                    HB.settings = copy.deepcopy(original)
                    self.reload("configuration reloaded")
        finally:
            HB.settings = original
            self.reload("configuration reloaded")
        # the daemon still serves after every key went and came back
        self.assertEqual(self.post("/beta").status, 200)

    def wait_rounds(self, tx, n):
        harness.wait_until(lambda: int(PG.scalar("SELECT rounds FROM transactions WHERE id = %d"
                                                 % tx)) >= n, timeout=15,
                           what="tx %d to have %d delivery rounds" % (tx, n))

    def final(self, tx):
        return harness.wait_until(
            lambda: PG.row("SELECT status, error FROM transactions WHERE id = %d AND status"
                           " NOT IN ('queued', 'processing')" % tx),
            timeout=15, what="tx %d to end" % tx)

    def test_3_disabling_a_channel_stops_its_retries(self):
        r = self.post("/stuck")
        self.assertEqual(r.status, 202, r.body)
        tx = r.json()["id"]
        self.wait_rounds(tx, 2)
        self.channel("stuck")["enabled"] = False
        self.reload("configuration reloaded")
        row = self.final(tx)
        self.assertEqual(row["status"], "failed")
        self.assertIn('channel "stuck" is disabled', row["error"])

    def test_4_lowering_max_attempts_stops_retries(self):
        r = self.post("/stuck2")
        self.assertEqual(r.status, 202, r.body)
        tx = r.json()["id"]
        self.wait_rounds(tx, 2)
        self.channel("stuck2")["retry"] = {"max_attempts": 1}
        self.reload("configuration reloaded")
        row = self.final(tx)
        self.assertEqual(row["status"], "failed")
        self.assertIn("max_attempts (1) reached", row["error"])
        rounds = int(PG.scalar("SELECT rounds FROM transactions WHERE id = %d" % tx))
        attempts = PG.count("attempts", "transaction_id = %d" % tx)
        # the round that found the lower limit sent nothing
        self.assertEqual(attempts, rounds - 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
