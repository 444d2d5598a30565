"""`hibus check` reports every problem as file:line:col; `hibus migrate` is idempotent."""

import glob
import os
import re
import unittest

import harness

HASH = None


def setUpModule():
    global HASH
    HASH = harness.password_hash("check-itest-secret")


def pos(text, token, occurrence=1, after=None):
    """1-based (line, col) of the occurrence-th token in text (after the string after)."""
    start = text.index(after) if after else 0
    i = start - 1
    for _ in range(occurrence):
        i = text.index(token, i + 1)
    line = text.count("\n", 0, i) + 1
    col = i - (text.rfind("\n", 0, i) + 1) + 1
    return line, col


HIBUS_YAML = """\
# hibus.yaml with two mistakes
listen:
  address: 127.0.0.1
  port: not-a-port
database:
  url: "${HIBUS_DATABASE_URL}"
limits:
  max_body: 1MiB
colour: blue
clients: clients.yaml
channels: channels
"""

CLIENTS_YAML = """\
roles: [lmis, ops]
clients:
  - id: lmis-national
    name: National LMIS
    roles: [lmis]
    password_hash: "%s"
"""

ROUTE = """\
routes:
  - name: archive
    mediator: http
    url: http://127.0.0.1:9/x
    primary: true
"""

BAD_REGEX = """\
name: regex-channel
match:
  path_regex: "^/lmis/(stock"
  methods: [POST]
allow:
  roles: [lmis]
mode: sync
""" + ROUTE

UNKNOWN_ROLE = """\
name: role-channel
match:
  path: /role
allow:
  roles: [lmis, auditors]
mode: sync
""" + ROUTE

DUPLICATE = """\
name: role-channel
match:
  path: /duplicate
allow:
  roles: [lmis]
mode: sync
""" + ROUTE

NO_URL = """\
name: no-url-channel
match:
  path: /no-url
allow:
  roles: [lmis]
mode: sync
routes:
  - name: archive
    mediator: http
    primary: true
"""


class CheckTest(harness.TestCase):

    def setUp(self):
        self.hb = harness.Hibus("postgresql://hibus@127.0.0.1:1/none")

    def write_broken(self):
        d = self.hb.conf_dir
        files = {
            "hibus.yaml": HIBUS_YAML,
            "clients.yaml": CLIENTS_YAML % HASH,
            "channels/a-regex.yaml": BAD_REGEX,
            "channels/b-role.yaml": UNKNOWN_ROLE,
            "channels/c-duplicate.yaml": DUPLICATE,
            "channels/d-no-url.yaml": NO_URL,
        }
        for name, text in files.items():
            harness.write_file(os.path.join(d, name), text)
        return files

    def test_reports_every_error_with_position(self):
        files = self.write_broken()
        # (file, acceptable (line, col) pairs: key or value, message keywords)
        port_k, port_v = pos(HIBUS_YAML, "port"), pos(HIBUS_YAML, "not-a-port")
        col_k, col_v = pos(HIBUS_YAML, "colour"), pos(HIBUS_YAML, "blue")
        re_k, re_v = pos(BAD_REGEX, "path_regex"), pos(BAD_REGEX, '"^/lmis')
        role_v = pos(UNKNOWN_ROLE, "auditors")
        role_k = pos(UNKNOWN_ROLE, "roles", after="allow:")
        dup_k, dup_v = pos(DUPLICATE, "name"), pos(DUPLICATE, "role-channel")
        url_item = pos(NO_URL, "name: archive")
        url_dash = pos(NO_URL, "- name: archive")
        url_key = pos(NO_URL, "routes")
        expected = [
            ("hibus.yaml", {port_k, port_v}, ["port", "integer", "number"]),
            ("hibus.yaml", {col_k, col_v}, ["colour"]),
            ("channels/a-regex.yaml", {re_k, re_v}, ["regex", "regular expression"]),
            ("channels/b-role.yaml", {role_v, role_k}, ["auditors"]),
            ("channels/c-duplicate.yaml", {dup_k, dup_v}, ["role-channel", "duplicate"]),
            ("channels/d-no-url.yaml", {url_item, url_dash, url_key}, ["url"]),
        ]
        r = self.hb.cli("check", "-c", os.path.join(self.hb.conf_dir, "hibus.yaml"))
        self.assertEqual(r.returncode, 1, "stdout: %r\nstderr: %s" % (r.stdout, r.stderr))
        self.assertNotIn("configuration OK", r.stdout)
        diags = []
        for ln in r.stderr.splitlines():
            m = re.match(r"^(.*?):(\d+):(\d+): (.*)$", ln)
            if m:
                diags.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
        self.assertTrue(diags, "no file:line:col: lines on stderr:\n" + r.stderr)
        problems = []
        for fname, places, words in expected:
            hits = [d for d in diags if (d[0] == fname or d[0].endswith("/" + fname))
                    and (d[1], d[2]) in places
                    and any(w.lower() in d[3].lower() for w in words)]
            if not hits:
                problems.append("%s at %s with one of %s" % (
                    fname, " or ".join("%d:%d" % p for p in sorted(places)), words))
        self.assertEqual(problems, [], "missing diagnostics; stderr was:\n" + r.stderr)
        for d in diags:
            self.assertTrue(any(d[0].endswith(f) for f in files), "diagnostic for an unknown"
                            " file: %r" % (d,))

    def test_harness_config_is_valid(self):
        hb = harness.Hibus("postgresql://hibus@127.0.0.1:1/none",
                           clients=[harness.client("lmis-national", ["lmis"], "x")],
                           channels=[harness.channel("lmis-stock", "/lmis/stock-reports",
                                                     "http://127.0.0.1:9/stock")])
        hb.port = 5001
        path = hb.write_config()
        r = hb.cli("check", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_sample_config(self):
        sample = os.path.join(harness.SOURCE_DIR, "conf", "hibus.yaml")
        env = {"HIBUS_PORT": "5001", "HIBUS_DATABASE_URL": "postgresql://x/y",
               "HIBUS_ARCHIVE_URL": "http://127.0.0.1:1",
               "HIBUS_DHIS2_URL": "http://127.0.0.1:1", "HIBUS_DHIS2_USER": "hibus",
               "HIBUS_DHIS2_PASSWORD": "x"}
        r = self.hb.cli("check", "-c", sample, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

        # a fresh checkout: what has a default is quiet, and each required variable
        # is named once, where first used, with what it is for
        for k in env:
            env[k] = None
        r = self.hb.cli("check", "-c", sample, env=env)
        self.assertEqual(r.returncode, 1, "stdout %r stderr %r" % (r.stdout, r.stderr))
        problems = [x for x in r.stderr.splitlines() if "environment variable" in x]
        self.assertEqual(len(problems), 2, r.stderr)
        with open(sample) as f:
            line, _ = pos(f.read(), "${HIBUS_DATABASE_URL")
        self.assertRegex(problems[0], r'hibus\.yaml:%d:\d+: environment variable '
                                      r'"HIBUS_DATABASE_URL" is not set: set it to ' % line)
        self.assertIn('"HIBUS_DHIS2_PASSWORD" is not set: the DHIS2 password', problems[1])
        self.assertIn("2 problems", r.stderr)

    def test_environment_file_beside_the_configuration(self):
        # the service's environment file (systemd's EnvironmentFile, /etc/hibus/environment)
        # serves the ${NAME}s the shell does not set: a command run by hand, and a
        # reload, see what the service sees
        ch = harness.channel("lmis-stock", "/lmis/stock-reports", "${ITEST_ARCHIVE_URL}")
        ch["routes"][0]["auth"] = {"basic": {"username": "hibus",
                                             "password": "${ITEST_SECRET}"}}
        hb = harness.Hibus("${ITEST_DB_URL}",
                           clients=[harness.client("lmis-national", ["lmis"], "x")],
                           channels=[ch], files={"environment": (
                               "# comments and blank lines are skipped\n\n"
                               "ITEST_DB_URL=postgresql://hibus@127.0.0.1:1/none\n"
                               "export ITEST_ARCHIVE_URL=\"http://127.0.0.1:9/old\"\n"
                               "ITEST_ARCHIVE_URL='http://127.0.0.1:9/stock'\n"
                               "ITEST_SECRET=s3cret=with=equals\n"
                               "not a line of the file's form\n")})
        hb.port = 5001
        path = hb.write_config()
        env = {"ITEST_DB_URL": None, "ITEST_ARCHIVE_URL": None, "ITEST_SECRET": None}
        r = hb.cli("check", "-c", path, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        # what the file does not set is still named, with where to set it
        with open(os.path.join(hb.conf_dir, "environment"), "w") as f:
            f.write("ITEST_DB_URL=postgresql://hibus@127.0.0.1:1/none\n")
        r = hb.cli("check", "-c", path, env=env)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('environment variable "ITEST_ARCHIVE_URL" is not set (set it, add it to '
                      '%s, or write' % os.path.join(hb.conf_dir, "environment"), r.stderr)
        # the process's own environment comes first
        r = hb.cli("check", "-c", path, env=dict(env, ITEST_ARCHIVE_URL="http://127.0.0.1:9/x",
                                                 ITEST_SECRET="y"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_missing_file(self):
        r = self.hb.cli("check", "-c", os.path.join(self.hb.dir, "nope", "hibus.yaml"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope/hibus.yaml", r.stderr)


class MigrateTest(harness.TestCase):

    def test_migrate_twice(self):
        with harness.PgCluster(name="pg-migrate") as pg:
            hb = harness.Hibus(pg.url, clients=[harness.client("lmis-national", ["lmis"], "x")],
                               channels=[harness.channel("lmis-stock", "/lmis/stock-reports",
                                                         "http://127.0.0.1:9/stock")])
            hb.port = 5001
            path = hb.write_config()
            n_sql = len(glob.glob(os.path.join(harness.SOURCE_DIR, "src", "migrations", "*.sql")))
            for i in (1, 2):
                r = hb.cli("migrate", "-c", path)
                self.assertEqual(r.returncode, 0, "migrate #%d: %s" % (i, r.stderr))
                self.assertEqual(pg.count("schema_migrations",
                                          "version::text ~ '^0*1$'"), 1)
                self.assertEqual(pg.count("schema_migrations"), n_sql)
            for table in ("transactions", "attempts"):
                self.assertEqual(pg.scalar("SELECT to_regclass('public.%s') IS NOT NULL" % table),
                                 "t", table)
            self.assertEqual(pg.count("transactions"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
