"""HTTPS on the listener: a certificate chain and key from listen.tls, what `hibus check`
says about bad ones, TLS versions, and a new certificate taken at reload."""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

import harness

PW = "tls-itest-secret"
ADMIN_PW = "tls-admin-secret"
ADMIN_PORT = None
AUTH = ("lmis-national", PW)
JSON = {"Content-Type": "application/json"}

PG = TARGET = HB = None
CERTS = None


def certtool(*args):
    subprocess.run(["certtool"] + list(args), check=True, capture_output=True)


def make_certs(d):
    """A CA; two server certificates for 127.0.0.1 (two keys); one that expired."""
    def tmpl(name, text):
        p = os.path.join(d, name + ".tmpl")
        with open(p, "w") as f:
            f.write(text)
        return p
    j = lambda n: os.path.join(d, n)  # noqa: E731
    certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", j("ca.key"))
    certtool("--generate-self-signed", "--load-privkey", j("ca.key"), "--template",
             tmpl("ca", 'cn = "hibus test CA"\nca\ncert_signing_key\nexpiration_days = 30\n'),
             "--outfile", j("ca.pem"))
    server = ('cn = "%s"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\n'
              'signing_key\nencryption_key\n')
    for n in ("a", "b"):
        certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", j(n + ".key"))
        certtool("--generate-certificate", "--load-privkey", j(n + ".key"),
                 "--load-ca-certificate", j("ca.pem"), "--load-ca-privkey", j("ca.key"),
                 "--template", tmpl(n, server % ("hibus-" + n) + "expiration_days = 30\n"),
                 "--outfile", j(n + ".crt"))
        # the server certificate, then the CA: a chain as a real installation has it
        with open(j(n + ".pem"), "w") as out:
            for part in (n + ".crt", "ca.pem"):
                with open(j(part)) as f:
                    out.write(f.read())
    certtool("--generate-certificate", "--load-privkey", j("a.key"),
             "--load-ca-certificate", j("ca.pem"), "--load-ca-privkey", j("ca.key"),
             "--template", tmpl("old", server % "hibus-old" +
                                'activation_date = "2020-01-01 00:00:00 UTC"\n'
                                'expiration_date = "2020-02-01 00:00:00 UTC"\n'),
             "--outfile", j("old.pem"))
    client = 'cn = "%s"\ntls_www_client\nsigning_key\nexpiration_days = 30\n'
    for n in ("lmis-client", "stranger"):
        certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", j(n + ".key"))
        certtool("--generate-certificate", "--load-privkey", j(n + ".key"),
                 "--load-ca-certificate", j("ca.pem"), "--load-ca-privkey", j("ca.key"),
                 "--template", tmpl(n, client % n), "--outfile", j(n + ".pem"))
    # self-signed: one pinned by its fingerprint, one that copies lmis-client's subject
    for n, cn in (("pinned", "pinned"), ("impostor", "lmis-client")):
        certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", j(n + ".key"))
        certtool("--generate-self-signed", "--load-privkey", j(n + ".key"), "--template",
                 tmpl(n, client % cn), "--outfile", j(n + ".pem"))
    with open(j("not-pem.txt"), "w") as f:
        f.write("this is not a certificate\n")
    return j


def sha256_of(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def client_context():
    ctx = ssl.create_default_context(cafile=CERTS("ca.pem"))
    ctx.check_hostname = False  # the certificates name 127.0.0.1 and localhost
    return ctx


def setUpModule():
    global PG, TARGET, HB, CERTS
    d = tempfile.mkdtemp(prefix="hibus-tls-")
    unittest.addModuleCleanup(shutil.rmtree, d, True)
    CERTS = make_certs(d)
    shutil.copy(CERTS("a.pem"), os.path.join(d, "live.pem"))
    shutil.copy(CERTS("a.key"), os.path.join(d, "live.key"))
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    global ADMIN_PORT
    ADMIN_PORT = harness.free_port()
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
                       channels=[harness.channel("c", "/lmis/stock", TARGET.url + "/s")],
                       settings={"listen": {"tls": {"cert": CERTS("live.pem"),
                                                    "key": CERTS("live.key")}},
                                 "admin": {"port": ADMIN_PORT, "users": "admin-users.yaml"}},
                       files={"admin-users.yaml": {"users": [
                           {"id": "ana", "role": "admin",
                            "password_hash": harness.password_hash(ADMIN_PW)}]}})
    HB.tls = client_context()
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def served_cn(port):
    """The common name of the certificate hibus presents now."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with client_context().wrap_socket(s) as t:
            subject = dict(x[0] for x in t.getpeercert()["subject"])
            return subject["commonName"], t.version()


class TlsTest(harness.TestCase):

    def test_https_request_end_to_end(self):
        r = HB.request("POST", "/lmis/stock", body=b"{}", auth=AUTH, headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(HB.request("GET", "/health").status, 200)

    def test_admin_listener_speaks_https_too(self):
        self.assertEqual(served_cn(ADMIN_PORT)[0], served_cn(HB.port)[0])
        r = harness.http_request(ADMIN_PORT, "GET", "/api/status", auth=("ana", ADMIN_PW),
                                 tls=client_context())
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["database"]["up"], True)
        with socket.create_connection(("127.0.0.1", ADMIN_PORT), timeout=5) as s:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except OSError:
                data = b""
        self.assertFalse(data.startswith(b"HTTP/1.1"), data)

    def test_plain_http_gets_no_answer(self):
        with socket.create_connection(("127.0.0.1", HB.port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except OSError:
                data = b""
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)

    def test_versions(self):
        # TLS 1.3 by default; 1.2 accepted; 1.1 and 1.0 refused by hibus (gnutls-cli is
        # the client: it can still offer them)
        self.assertEqual(served_cn(HB.port)[1], "TLSv1.3")
        for prio, ok in (("NORMAL:-VERS-ALL:+VERS-TLS1.2", True),
                         ("NORMAL:-VERS-ALL:+VERS-TLS1.1", False),
                         ("NORMAL:-VERS-ALL:+VERS-TLS1.0", False)):
            r = subprocess.run(["gnutls-cli", "--x509cafile", CERTS("ca.pem"), "--priority", prio,
                                "--port", str(HB.port), "127.0.0.1"], input=b"",
                               capture_output=True, timeout=30)
            out = (r.stdout + r.stderr).decode(errors="replace")
            self.assertEqual("Handshake was completed" in out, ok, (prio, out[-600:]))

    def test_check_says_what_is_wrong(self):
        cases = [
            ({"cert": CERTS("a.pem"), "key": CERTS("b.key")}, "does not match the certificate"),
            ({"cert": CERTS("old.pem"), "key": CERTS("a.key")}, "expired on 2020-02-01"),
            ({"cert": CERTS("not-pem.txt"), "key": CERTS("a.key")}, "holds no PEM certificate"),
            ({"cert": CERTS("a.pem"), "key": CERTS("not-pem.txt")}, "holds no PEM private key"),
            ({"cert": CERTS("missing.pem"), "key": CERTS("a.key")}, "cannot read the certificate"),
            ({"cert": CERTS("a.pem")}, "needs both cert and key"),
        ]
        for tls, words in cases:
            hb = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
                               settings={"listen": {"tls": tls}}, name="check")
            hb.write_config()
            r = hb.cli("check", "-c", hb.config_path)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn(words, r.stderr + r.stdout, tls)
            self.assertRegex(r.stderr + r.stdout, r"hibus\.yaml:\d+:\d+: listen\.tls", tls)

    def test_zz_reload_takes_a_new_certificate_and_keeps_a_good_one(self):
        self.assertEqual(served_cn(HB.port)[0], "hibus-a")
        shutil.copy(CERTS("b.pem"), CERTS("live.pem"))
        shutil.copy(CERTS("b.key"), CERTS("live.key"))
        before = HB.log_text().count("configuration reloaded")
        os.kill(HB.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: HB.log_text().count("configuration reloaded") > before,
                           timeout=10, what="the reload")
        self.assertEqual(served_cn(HB.port)[0], "hibus-b")
        self.assertEqual(served_cn(ADMIN_PORT)[0], "hibus-b")  # the admin listener follows
        # a key that does not match: the reload is refused, hibus-b stays
        shutil.copy(CERTS("a.key"), CERTS("live.key"))
        os.kill(HB.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: "does not match the certificate" in HB.log_text(),
                           timeout=10, what="the refused reload")
        self.assertEqual(served_cn(HB.port)[0], "hibus-b")
        self.assertEqual(HB.request("GET", "/health").status, 200)


def tls_channel(name, url, tls=None):
    ch = harness.channel(name, "/out/" + name, url)
    if tls is not None:
        ch["routes"][0]["tls"] = tls
    return ch


class OutboundTest(harness.TestCase):
    """Routes to an HTTPS target whose certificate the test CA signed."""

    @classmethod
    def setUpClass(cls):
        cls.target = harness.Target(tls=(CERTS("a.pem"), CERTS("a.key"))).start()
        cls.addClassCleanup(cls.target.stop)
        url = cls.target.url + "/x"
        cls.hb = harness.Hibus(
            PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)], name="outbound",
            channels=[tls_channel("system-ca", url),
                      tls_channel("own-ca", url, {"ca_file": CERTS("ca.pem")}),
                      tls_channel("no-check", url, {"verify": False})])
        cls.addClassCleanup(cls.hb._cleanup)
        cls.hb.start()

    def post(self, name):
        return self.hb.request("POST", "/out/" + name, body=b"{}", auth=AUTH, headers=JSON)

    def test_checked_against_the_system_cas_by_default(self):
        before = len(self.target.requests)
        r = self.post("system-ca")
        self.assertEqual(r.status, 502, r.body)
        tx = self.hb.cli("tx", r.headers["x-hibus-transaction"], "-c", self.hb.config_path,
                         "--json")
        self.assertIn("certificate", tx.stdout.lower())
        self.assertEqual(len(self.target.requests), before, "the body reached an unchecked target")

    def test_route_ca_file(self):
        r = self.post("own-ca")
        self.assertEqual(r.status, 200, r.body)

    def test_verify_false_works_and_is_logged_at_start(self):
        r = self.post("no-check")
        self.assertEqual(r.status, 200, r.body)
        self.assertIn('route "archive" of channel "no-check" does not check the TLS certificate',
                      self.hb.log_text())
        self.assertNotIn('channel "own-ca" does not check', self.hb.log_text())

    def test_check_refuses_bad_tls_keys(self):
        http_url = "http://127.0.0.1:9/x"
        cases = [
            (tls_channel("c", "https://127.0.0.1:9/x", {"ca_file": CERTS("missing.pem")}),
             "cannot read the CA file"),
            (tls_channel("c", "https://127.0.0.1:9/x", {"ca_file": CERTS("not-pem.txt")}),
             "holds no PEM certificate"),
            (tls_channel("c", http_url, {"verify": False}), "applies to https:// URLs only"),
            (tls_channel("c", "https://127.0.0.1:9/x",
                         {"ca_file": CERTS("ca.pem"), "verify": False}), "choose one"),
        ]
        for ch, words in cases:
            hb = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PW)],
                               channels=[ch], name="check")
            hb.write_config()
            r = hb.cli("check", "-c", hb.config_path)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn(words, r.stderr + r.stdout)
            self.assertRegex(r.stderr + r.stdout, r"channels/c\.yaml:\d+:\d+: routes\[0\]\.tls")


class MutualTest(harness.TestCase):
    """Clients identified by their certificate: a subject vouched for by
    listen.tls.client_ca, or a pinned SHA-256 (a self-signed certificate)."""

    @classmethod
    def setUpClass(cls):
        cls.hb = harness.Hibus(
            PG.url, name="mutual",
            clients=[harness.client("lmis-national", ["lmis"], PW),
                     {"id": "by-subject", "roles": ["lmis"],
                      "certificate": {"subject": "CN=lmis-client"}},
                     {"id": "by-fingerprint", "roles": ["lmis"],
                      "certificate": {"sha256": sha256_of(CERTS("pinned.pem"))}}],
            channels=[harness.channel("c", "/lmis/stock", TARGET.url + "/s")],
            settings={"listen": {"tls": {"cert": CERTS("a.pem"), "key": CERTS("a.key"),
                                         "client_ca": CERTS("ca.pem")}}})
        cls.hb.tls = client_context()
        cls.addClassCleanup(cls.hb._cleanup)
        cls.hb.start()

    def post_with(self, cert, auth=None):
        ctx = client_context()
        if cert:
            ctx.load_cert_chain(CERTS(cert + ".pem"), CERTS(cert + ".key"))
        return harness.http_request(self.hb.port, "POST", "/lmis/stock", body=b"{}",
                                    headers=JSON, auth=auth, tls=ctx)

    def client_of(self, r):
        tx = r.headers["x-hibus-transaction"]
        return PG.scalar("SELECT client FROM transactions WHERE id = %s" % tx)

    def test_subject_vouched_for_by_the_client_ca(self):
        r = self.post_with("lmis-client")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.client_of(r), "by-subject")

    def test_subject_without_the_ca_is_nobody(self):
        r = self.post_with("impostor")
        self.assertJsonError(r, 401, "HIBUS_E_AUTH")

    def test_pinned_fingerprint(self):
        r = self.post_with("pinned")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.client_of(r), "by-fingerprint")

    def test_unknown_certificate_falls_back_to_a_password(self):
        r = self.post_with("stranger")
        self.assertJsonError(r, 401, "HIBUS_E_AUTH")
        r = self.post_with("stranger", auth=AUTH)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.client_of(r), "lmis-national")
        r = self.post_with(None)
        self.assertJsonError(r, 401, "HIBUS_E_AUTH")

    def test_check_refuses_bad_certificate_clients(self):
        cases = [
            ({"certificate": {"sha256": "12:34"}}, {}, "64 hex digits"),
            ({"certificate": {"subject": "CN=x"}}, {}, "needs listen.tls.client_ca"),
            ({"certificate": {"subject": "CN=x", "sha256": sha256_of(CERTS("pinned.pem"))}}, {},
             "exactly one of sha256 or subject"),
            ({}, {}, 'missing required key "password_hash"'),
            ({"certificate": {"sha256": sha256_of(CERTS("pinned.pem"))}},
             {"listen": {"tls": {"cert": CERTS("a.pem"), "key": CERTS("a.key"),
                                 "client_ca": CERTS("not-pem.txt")}}},
             "listen.tls.client_ca: "),
        ]
        for extra, settings, words in cases:
            c = {"id": "x", "roles": ["lmis"]}
            c.update(extra)
            hb = harness.Hibus(PG.url, clients=[c], settings=settings, name="check")
            hb.write_config()
            r = hb.cli("check", "-c", hb.config_path)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn(words, r.stderr + r.stdout, extra)


if __name__ == "__main__":
    unittest.main(verbosity=2)
