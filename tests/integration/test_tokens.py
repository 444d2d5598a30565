"""Clients' bearer tokens: hibus token new / list / revoke, and requests that carry one."""

import json
import time
import unittest

import harness

PW = "tokens-itest-secret"
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW),
                                        harness.client("lmis-off", ["lmis"], PW, enabled=False)],
                       channels=[harness.channel("c", "/lmis/stock", TARGET.url + "/s")])
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def post(token):
    return HB.request("POST", "/lmis/stock", body=b"{}",
                      headers=dict(JSON, Authorization="Bearer " + token))


class TokenTest(harness.TestCase):

    def new_token(self, client="lmis-national"):
        r = HB.cli("token", "new", "-c", HB.config_path, client)
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.assertRegex(token, r"^hbt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")
        self.assertIn("not shown again", r.stderr)
        return token

    def test_new_token_authenticates_its_client(self):
        token = self.new_token()
        r = post(token)
        self.assertEqual(r.status, 200, r.body)
        tx = r.headers["x-hibus-transaction"]
        self.assertEqual(PG.scalar("SELECT client FROM transactions WHERE id = %s" % tx),
                         "lmis-national")
        # only a hash is kept: the secret is nowhere in the database
        secret = token.split("_", 2)[2]
        dump = PG.scalar("SELECT string_agg(t::text, ' ') FROM client_tokens t")
        self.assertNotIn(secret, dump)
        self.assertNotIn(token, HB.log_text())

    def test_wrong_unknown_and_malformed_tokens(self):
        token = self.new_token()
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        unknown = "hbt_0123456789abcdef_" + token.split("_", 2)[2]
        for t, words in ((wrong, "unknown or revoked token"), (unknown, "unknown or revoked token"),
                         ("hbt_short", "not one hibus made"), ("eyJhbGciOi.x.y", "not one hibus made")):
            err = self.assertJsonError(post(t), 401, "HIBUS_E_AUTH")
            self.assertIn(words, err["details"][0], t)

    def test_list_and_revoke(self):
        token = self.new_token()
        tid = token.split("_")[1]
        r = HB.cli("token", "list", "-c", HB.config_path, "--json", "lmis-national")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {t["id"]: t for t in json.loads(r.stdout)}
        self.assertIn(tid, listed)
        self.assertIsNone(listed[tid]["revoked_at"])
        self.assertNotIn(token.split("_", 2)[2], r.stdout)
        self.assertEqual(post(token).status, 200)
        r = HB.cli("token", "revoke", "-c", HB.config_path, tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        # the running hibus stops taking it within its cache time (5 s)
        harness.wait_until(lambda: post(token).status == 401, timeout=8,
                           what="the revoked token refused")
        r = HB.cli("token", "list", "-c", HB.config_path)
        self.assertRegex(r.stdout, tid + r"\s+lmis-national\s+\S+\s+\d{4}-")
        r = HB.cli("token", "revoke", "-c", HB.config_path, "ffffffffffffffff")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no token ffffffffffffffff", r.stderr)

    def test_token_of_a_disabled_or_unknown_client(self):
        token = self.new_token("lmis-off")
        self.assertJsonError(post(token), 401, "HIBUS_E_AUTH")
        r = HB.cli("token", "new", "-c", HB.config_path, "nobody")
        self.assertEqual(r.returncode, 1)
        self.assertIn('no client "nobody"', r.stderr)
        r = HB.cli("token", "frobnicate", "-c", HB.config_path)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
