"""The JSON log format (hibus.yaml `log: { format: json }`, src/log.c) and request and
response bodies that are not UTF-8 text (stored as bytes, shown as `*_base64` by
`hibus tx --json` and as "binary, base64" by `hibus tx`, src/txlog.c and src/cli.c)."""

import base64
import http.server
import json
import os
import re
import signal
import threading
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
OCTETS = {"Content-Type": "application/octet-stream"}

# Not UTF-8: a NUL, bytes that never occur in UTF-8 (0xff, 0xfe), a lone continuation
# byte (0x80), and the rest of a PNG signature.
BINARY = b"\x89PNG\r\n\x1a\n\x00\x01\x02\xff\xfe binary \x80 end"

# Byte strings that a careless check would take for UTF-8 (src/txlog_read.c's utf8_valid).
NOT_UTF8 = {
    "overlong '/'": b"a\xc0\xafb",
    "surrogate U+D800": b"a\xed\xa0\x80b",
    "truncated at the end": b"abc\xe2\x82",
    "above U+10FFFF": b"a\xf4\x90\x80\x80b",
    "lone continuation byte": b"\x80",
}
# ... and some that are UTF-8 and must stay text.
UTF8 = {
    "two-byte": "r\u00e9ception".encode("utf-8"),
    "three-byte": "\u2013 \u20ac".encode("utf-8"),
    "four-byte": "stock \U0001F600".encode("utf-8"),
    "largest code point": "\U0010FFFF".encode("utf-8"),
}

LOG_KEYS = {"time", "level", "req", "subsys", "msg", "tx", "channel", "client", "status"}
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LOG_LEVELS = {"ERROR", "WARN", "INFO", "DEBUG"}
LOG_LINE_MAX = 4096   # src/log.c: a message longer than this is cut and ends with "..."

PG = TARGET = ECHO = HB = None


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with its own body as application/octet-stream."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class EchoTarget:
    def start(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True, name="echo")
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]


def clients():
    return [harness.client("lmis-national", ["lmis"], PASSWORD)]


def channels():
    return [
        # any content type (binary bodies), forwarded to the target, or echoed back
        harness.channel("bin", "/bin", TARGET.url + "/stock", content_types=None),
        harness.channel("echo", "/echo", ECHO.url + "/echo", content_types=None),
        # any path below /logs: request paths put arbitrary text in log messages
        harness.channel("logs", "/logs", TARGET.url + "/stock", content_types=None,
                        match_kind="path_prefix"),
    ]


def setUpModule():
    global PG, TARGET, ECHO, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    ECHO = EchoTarget().start()
    # request targets of up to 8 KiB make the long log messages: a quarter of 32 KiB
    HB = harness.Hibus(PG.url, clients=clients(), channels=channels(),
                       settings={"log": {"level": "debug", "format": "json"},
                                 "limits": {"connection_memory": "32KiB"}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, ECHO, TARGET, PG)


def log_lines(hb):
    """The lines hibus wrote to its log, as bytes (the harness's own "=== hibus serve
    ..." markers left out)."""
    with open(hb.log_path, "rb") as f:
        raw = f.read()
    return [ln for ln in raw.split(b"\n") if ln and not ln.startswith(b"=== hibus serve ")]


def parse_log_line(test, line):
    """One JSON log line (bytes) as a dict, after checking its shape."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        test.fail("not a JSON line in UTF-8 (%s): %r" % (e, line[:300]))
    test.assertIsInstance(obj, dict, line)
    test.assertLessEqual(set(obj), LOG_KEYS, line)
    test.assertLessEqual({"time", "level", "subsys", "msg"}, set(obj), line)
    test.assertRegex(obj["time"], LOG_TIME)
    test.assertIn(obj["level"], LOG_LEVELS)
    test.assertIsInstance(obj["subsys"], str)
    test.assertTrue(obj["subsys"])
    test.assertIsInstance(obj["msg"], str)
    if "req" in obj:
        test.assertIsInstance(obj["req"], str)
        test.assertTrue(obj["req"])
    return obj


def post(path, body, request_id, headers=OCTETS):
    h = dict(headers)
    h["X-Request-Id"] = request_id
    return HB.request("POST", path, body=body, auth=AUTH, headers=h)


def raw_post(target, request_id):
    """POSTs {} to target (bytes, sent as they are); returns the status."""
    auth = base64.b64encode(("%s:%s" % AUTH).encode())
    head = (b"POST " + target + b" HTTP/1.1\r\nHost: hibus\r\nConnection: close\r\n"
            b"Content-Type: application/octet-stream\r\nX-Request-Id: " +
            request_id.encode() + b"\r\nAuthorization: Basic " + auth +
            b"\r\nContent-Length: 2\r\n\r\n{}")
    return int(harness.raw_exchange(HB.port, head).split(b" ", 2)[1])


class JsonLogTest(harness.TestCase):

    def wait_line(self, pred, what):
        """The first JSON log line of HB for which pred(obj) is true (bounded wait)."""
        def find():
            for ln in log_lines(HB):
                try:
                    obj = json.loads(ln.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    continue
                if isinstance(obj, dict) and pred(obj):
                    return ln
            return None
        return parse_log_line(self, harness.wait_until(find, timeout=10, what=what))

    def test_request_line(self):
        r = post("/bin", b'{"n": 1}', "itest-json-log-1",
                 headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        tx = int(r.headers["x-hibus-transaction"])
        obj = self.wait_line(lambda o: o.get("req") == "itest-json-log-1",
                             "a log line with req itest-json-log-1")
        self.assertEqual(obj["level"], "INFO")
        self.assertEqual(obj["subsys"], "listener")
        self.assertRegex(obj["msg"], r"^POST /bin -> 200 channel=bin client=lmis-national "
                                     r"tx=%d status=successful [0-9.]+ms$" % tx)
        # what the message says inline, as fields a log collector can select on
        self.assertEqual((obj["tx"], obj["channel"], obj["client"], obj["status"]),
                         (tx, "bin", "lmis-national", "successful"))
        # a path cannot pose as them: the real ones follow it
        r = post("/logs/x%20channel=evil%20client=mallory%20tx=1", b"{}",
                 "itest-json-log-forged")
        self.assertEqual(r.status, 200, r.body)
        obj = self.wait_line(lambda o: o.get("req") == "itest-json-log-forged",
                             "a log line with req itest-json-log-forged")
        self.assertIn("channel=evil", obj["msg"])
        self.assertNotEqual(obj.get("channel"), "evil", obj)
        self.assertEqual(obj["client"], "lmis-national")
        self.assertEqual(obj["tx"], int(r.headers["x-hibus-transaction"]))

    def test_special_characters_are_escaped(self):
        # quote, backslash, newline, tab and a control character in the path (sent
        # percent-encoded, logged decoded): one line still, and the exact text back
        r = post("/logs/q%22b%5Cn%0At%09c%01/end", b"{}", "itest-json-log-2")
        self.assertEqual(r.status, 200, r.body)
        obj = self.wait_line(lambda o: o.get("req") == "itest-json-log-2",
                             "a log line with req itest-json-log-2")
        self.assertTrue(obj["msg"].startswith('POST /logs/q"b\\n\nt\tc\x01/end -> 200 '),
                        obj["msg"])
        raw = [ln for ln in log_lines(HB) if b'"req":"itest-json-log-2"' in ln]
        self.assertEqual(len(raw), 1, raw)
        self.assertIn(b'q\\"b\\\\n\\nt\\u0009c\\u0001/end', raw[0])
        self.assertNotIn(b"\t", raw[0])

    def test_long_message_is_cut(self):
        r = post("/logs/" + "a" * 6000, b"{}", "itest-json-log-3")
        self.assertEqual(r.status, 200, r.body)
        obj = self.wait_line(lambda o: o.get("req") == "itest-json-log-3",
                             "a log line with req itest-json-log-3")
        self.assertTrue(obj["msg"].startswith("POST /logs/aaaa"), obj["msg"][:100])
        # cut, not dropped, and said to be cut
        self.assertTrue(obj["msg"].endswith("aaa..."), obj["msg"][-100:])
        self.assertTrue(1000 < len(obj["msg"]) < LOG_LINE_MAX, len(obj["msg"]))

    def test_long_message_with_quotes_is_cut(self):
        # every '"' takes two bytes once escaped: the line is full before the message ends
        # 2,500 of them: longer than the line once escaped, within the 8 KiB request target (limits.connection_memory 32 KiB)
        r = post("/logs/" + "%22" * 2500, b"{}", "itest-json-log-4")
        self.assertEqual(r.status, 200, r.body)
        obj = self.wait_line(lambda o: o.get("req") == "itest-json-log-4",
                             "a log line with req itest-json-log-4")
        self.assertTrue(obj["msg"].startswith('POST /logs/"""'), obj["msg"][:100])
        self.assertLess(len(obj["msg"]), LOG_LINE_MAX)
        self.assertEqual(set(obj["msg"][len("POST /logs/"):]), {'"'})

    def test_long_message_cut_between_characters(self):
        # A message longer than the line is cut at a character boundary (it was cut at
        # a byte count, inside a UTF-8 sequence, and the JSON line was not UTF-8). Paths
        # of two-byte characters after prefixes of either parity: one of the two cuts
        # falls mid-character.
        # The path is sent as raw UTF-8, not percent-encoded: 2,100 characters would
        # take 12,600 bytes so, past the 8 KiB limit of a request target.
        for n, prefix in enumerate(("x", "xy")):
            rid = "itest-json-log-5-%d" % n
            status = raw_post(("/logs/" + prefix + "\u00e9" * 2100).encode("utf-8"), rid)
            self.assertEqual(status, 200)
            key = b'"req":"%s"' % rid.encode()
            harness.wait_until(lambda: [ln for ln in log_lines(HB) if key in ln],
                               timeout=10, what="a log line with req %s" % rid)
            raw = [ln for ln in log_lines(HB) if key in ln]
            self.assertEqual(len(raw), 1, raw)
            obj = parse_log_line(self, raw[0])
            self.assertTrue(obj["msg"].endswith("\u00e9..."), obj["msg"][-20:])

    def test_lifecycle_and_level(self):
        # its own hibus at level info: every line it writes from start to stop is a
        # JSON object, none is DEBUG, and the start and stop lines are there
        hb = harness.Hibus(PG.url, clients=clients(), channels=channels(),
                           settings={"log": {"level": "info", "format": "json"}})
        self.addCleanup(hb._cleanup)
        hb.start()
        r = hb.request("POST", "/bin", body=BINARY, auth=AUTH, headers=OCTETS)
        self.assertEqual(r.status, 200, r.body)
        r = hb.request("POST", "/nowhere", body=b"{}", auth=AUTH, headers=OCTETS)
        self.assertEqual(r.status, 404, r.body)
        r = hb.request("POST", "/bin", body=b"{}", auth=("lmis-national", "wrong"),
                       headers=OCTETS)
        self.assertEqual(r.status, 401, r.body)
        hb.stop()
        objs = [parse_log_line(self, ln) for ln in log_lines(hb)]
        msgs = [o["msg"] for o in objs]
        self.assertTrue(any(m.startswith("hibus ") and " listening on " in m for m in msgs), msgs)
        self.assertEqual(msgs[-1], "stopped", msgs)
        self.assertTrue(any(m.startswith("SIGTERM: ") for m in msgs), msgs)
        self.assertTrue(any(o.get("req") and m.startswith("404 ") for o, m in zip(objs, msgs)),
                        msgs)
        self.assertTrue(any(o.get("req") and m.startswith("401 ") for o, m in zip(objs, msgs)),
                        msgs)
        self.assertNotIn("DEBUG", {o["level"] for o in objs})
        self.assertNotIn(PASSWORD, "\n".join(msgs))

    def test_text_lines_cannot_be_forged(self):
        # a CR/LF, an ESC or a byte that is not UTF-8 from the client's path reaches
        # the text log escaped: every line still starts with a timestamp
        hb = harness.Hibus(PG.url, clients=clients(), channels=channels(),
                           settings={"log": {"level": "info", "format": "text"}})
        self.addCleanup(hb._cleanup)
        hb.start()
        forged = "/logs/x%0D%0A2026-01-01T00:00:00.000Z%20ERROR%20forged%1B[31m%5C"
        r = hb.request("POST", forged, body=b"{}", auth=AUTH,
                       headers=dict(OCTETS, **{"X-Request-Id": "itest-forge"}))
        self.assertEqual(r.status, 200, r.body)
        harness.wait_until(lambda: any(b"req=itest-forge " in ln for ln in log_lines(hb)),
                           timeout=10, what="the line of itest-forge")
        hb.stop()
        lines = log_lines(hb)
        for ln in lines:
            if ln.startswith(b"==="):  # the harness's own marker
                continue
            self.assertRegex(ln, rb"^\d{4}-\d\d-\d\dT", ln)
            self.assertNotIn(b"\x1b", ln)
        line = next(ln for ln in lines if b"req=itest-forge " in ln)
        self.assertIn(b"/logs/x\\x0D\\x0A2026-01-01T00:00:00.000Z ERROR forged\\x1B[31m\\\\", line)

    def test_reload_switches_format(self):
        # SIGHUP with log.format changed from text to json: the lines after the reload
        # are JSON, those before stay text
        hb = harness.Hibus(PG.url, clients=clients(), channels=channels(),
                           settings={"log": {"level": "info", "format": "text"}})
        self.addCleanup(hb._cleanup)
        hb.start()
        r = hb.request("POST", "/bin", body=b"{}", auth=AUTH,
                       headers=dict(OCTETS, **{"X-Request-Id": "itest-text-before"}))
        self.assertEqual(r.status, 200, r.body)
        harness.wait_until(lambda: any(b"req=itest-text-before " in ln for ln in log_lines(hb)),
                           timeout=10, what="the text line of itest-text-before")
        n_before = len(log_lines(hb))
        hb.settings["log"]["format"] = "json"
        hb.write_config()
        os.kill(hb.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: any(b'"msg":"configuration reloaded from ' in ln
                                       for ln in log_lines(hb)),
                           timeout=10, what="the JSON line saying the configuration reloaded")
        r = hb.request("POST", "/bin", body=b"{}", auth=AUTH,
                       headers=dict(OCTETS, **{"X-Request-Id": "itest-json-after"}))
        self.assertEqual(r.status, 200, r.body)
        harness.wait_until(lambda: any(b'"req":"itest-json-after"' in ln
                                       for ln in log_lines(hb)),
                           timeout=10, what="the JSON line of itest-json-after")
        hb.stop()
        lines = log_lines(hb)
        for ln in lines[:n_before]:
            self.assertFalse(ln.startswith(b"{"), ln)
        at = next(i for i, ln in enumerate(lines)
                  if b'"msg":"configuration reloaded from ' in ln)
        self.assertGreaterEqual(at, n_before)
        after = [parse_log_line(self, ln) for ln in lines[at:]]
        self.assertTrue(any(o.get("req") == "itest-json-after" for o in after), after)
        self.assertEqual(after[-1]["msg"], "stopped")

    def test_reload_changes_level(self):
        # log.level warn on SIGHUP: a request's INFO line is no longer written; back to
        # info, it is again
        hb = harness.Hibus(PG.url, clients=clients(), channels=channels(),
                           settings={"log": {"level": "info", "format": "text"}})
        self.addCleanup(hb._cleanup)
        hb.start()

        def post_and_mark(rid):
            r = hb.request("POST", "/bin", body=b"{}", auth=AUTH,
                           headers=dict(OCTETS, **{"X-Request-Id": rid}))
            self.assertEqual(r.status, 200, r.body)

        # (a restart key changed too, so that the reload says so at WARN: the sign that
        # it happened, since at warn its INFO line is not written)
        hb.settings["log"]["level"] = "warn"
        hb.settings["database"] = {"pool": 5}
        hb.reload("database.pool changed")
        post_and_mark("itest-level-quiet")
        hb.settings["log"]["level"] = "info"
        hb.reload("configuration reloaded")
        post_and_mark("itest-level-loud")
        harness.wait_until(lambda: "req=itest-level-loud " in hb.log_text(), timeout=10,
                           what="the INFO line of itest-level-loud")
        self.assertNotIn("req=itest-level-quiet ", hb.log_text())


class BinaryBodyTest(harness.TestCase):

    def tx_text(self, tx):
        r = HB.cli("tx", str(tx), "-c", HB.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_tx_keeps_the_terminal_safe(self):
        # ESC, CR and a C1 control in the path and the body are shown escaped by the
        # text view of hibus tx; --json escapes them as JSON does
        body = "line 1\x1b[2J\x1b]0;owned\x07\r\nline 2 \u009b31m".encode()
        r = post("/logs/term%1B[31m", body, "itest-term")
        self.assertEqual(r.status, 200, r.body)
        tx = int(r.headers["x-hibus-transaction"])
        out = self.tx_text(tx)
        for raw in ("\x1b", "\r", "\x07", "\u009b"):
            self.assertNotIn(raw, out)
        self.assertIn("/logs/term\\x1B[31m", out)
        self.assertIn("line 1\\x1B[2J\\x1B]0;owned\\x07\\x0D", out)
        self.assertIn("line 2 \\u009B31m", out)
        j = HB.cli("tx", str(tx), "--json", "-c", HB.config_path)
        self.assertEqual(json.loads(j.stdout)["request_body"], body.decode())

    def test_binary_request_body(self):
        before = len(TARGET.requests)
        r = post("/bin", BINARY, "itest-binary-1")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"received": True, "path": "/stock", "bytes": len(BINARY)})
        tx = int(r.headers["x-hibus-transaction"])
        # forwarded byte for byte
        reqs = TARGET.requests[before:]
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0].body, BINARY)
        # stored byte for byte
        self.assertEqual(bytes.fromhex(PG.scalar(
            "SELECT encode(request_body, 'hex') FROM transactions WHERE id = %d" % tx)), BINARY)
        # hibus tx --json: base64 under request_body_base64, no request_body
        j = HB.tx_json(tx)
        self.assertNotIn("request_body", j)
        self.assertEqual(base64.b64decode(j["request_body_base64"], validate=True), BINARY)
        self.assertEqual(j["request_body_len"], len(BINARY))
        self.assertEqual(j["response_body"], r.body.decode("utf-8"))
        self.assertNotIn("response_body_base64", j)
        # hibus tx: said to be binary, shown as base64
        b64 = base64.b64encode(BINARY).decode()
        out = self.tx_text(tx)
        self.assertIn("request body (binary, base64, %d characters)\n  %s\n" % (len(b64), b64),
                      out)
        self.assertIn("response body (text, ", out)

    def test_what_counts_as_utf8(self):
        for name, body in list(NOT_UTF8.items()) + list(UTF8.items()):
            with self.subTest(name):
                r = post("/bin", body, "itest-binary-%s" % name.replace(" ", "-")
                         .replace("'", "").replace("+", ""))
                self.assertEqual(r.status, 200, r.body)
                j = HB.tx_json(int(r.headers["x-hibus-transaction"]))
                self.assertEqual(j["request_body_len"], len(body))
                if name in NOT_UTF8:
                    self.assertNotIn("request_body", j)
                    self.assertEqual(base64.b64decode(j["request_body_base64"]), body)
                else:
                    self.assertNotIn("request_body_base64", j)
                    self.assertEqual(j["request_body"], body.decode("utf-8"))

    def test_binary_response_body(self):
        # the echo target answers the request's bytes as application/octet-stream
        r = post("/echo", BINARY, "itest-binary-echo")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.body, BINARY)
        self.assertEqual(r.headers.get("content-type"), "application/octet-stream")
        tx = int(r.headers["x-hibus-transaction"])
        j = HB.tx_json(tx)
        self.assertEqual(base64.b64decode(j["request_body_base64"]), BINARY)
        self.assertNotIn("response_body", j)
        self.assertEqual(base64.b64decode(j["response_body_base64"]), BINARY)
        self.assertEqual(len(j["attempts"]), 1, j["attempts"])
        a = j["attempts"][0]
        self.assertEqual(a["status_code"], 200)
        self.assertNotIn("response_excerpt", a)
        self.assertEqual(base64.b64decode(a["response_excerpt_base64"]), BINARY)
        b64 = base64.b64encode(BINARY).decode()
        out = self.tx_text(tx)
        self.assertIn("response body (binary, base64, %d characters)\n  %s\n" % (len(b64), b64),
                      out)

    def test_long_binary_body(self):
        # 6000 bytes: 8000 base64 characters; hibus tx shows 4000 and says how many
        # more, --json has them all; the attempt keeps an excerpt of the answer
        body = bytes(range(256)) * 23 + b"\xff" * 112
        self.assertEqual(len(body), 6000)
        r = post("/echo", body, "itest-binary-long")
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertEqual(r.body, body)
        tx = int(r.headers["x-hibus-transaction"])
        j = HB.tx_json(tx)
        self.assertEqual(base64.b64decode(j["request_body_base64"]), body)
        self.assertEqual(base64.b64decode(j["response_body_base64"]), body)
        self.assertEqual(j["request_body_len"], 6000)
        excerpt = base64.b64decode(j["attempts"][0]["response_excerpt_base64"])
        self.assertTrue(0 < len(excerpt) <= 1024, len(excerpt))
        self.assertEqual(excerpt, body[:len(excerpt)])
        b64 = base64.b64encode(body).decode()
        out = self.tx_text(tx)
        self.assertIn("request body (binary, base64, 8000 characters)\n  %s\n"
                      "  ... (4000 more; hibus tx --json shows all)\n" % b64[:4000], out)

    def test_text_answer_excerpt(self):
        # a UTF-8 answer longer than the excerpt: whatever form the excerpt takes (the
        # cut may fall inside a character), its bytes are the answer's first ones
        body = ("x" + "\u00e9" * 1500).encode("utf-8")
        r = post("/echo", body, "itest-text-excerpt")
        self.assertEqual(r.status, 200, r.body[:200])
        j = HB.tx_json(int(r.headers["x-hibus-transaction"]))
        self.assertEqual(j["response_body"], body.decode("utf-8"))
        a = j["attempts"][0]
        excerpt = (base64.b64decode(a["response_excerpt_base64"])
                   if "response_excerpt_base64" in a else a["response_excerpt"].encode("utf-8"))
        self.assertTrue(0 < len(excerpt) <= 1024, len(excerpt))
        self.assertEqual(excerpt, body[:len(excerpt)])

    def test_nul_in_text_body_is_shown(self):
        # A body with a NUL byte is valid UTF-8, so --json has it as text ("a\u0000b");
        # hibus tx measured and printed it with strlen ("(text, 1 characters)" and
        # "a", the rest dropped).
        body = b"a\x00b"
        r = post("/bin", body, "itest-binary-nul")
        self.assertEqual(r.status, 200, r.body)
        tx = int(r.headers["x-hibus-transaction"])
        self.assertEqual(HB.tx_json(tx)["request_body"], "a\x00b")
        out = self.tx_text(tx)
        # the text view writes the NUL escaped, as every control character
        self.assertIn("request body (text, 3 characters)\n  a\\x00b\n", out)

    def test_empty_body(self):
        r = post("/bin", b"", "itest-binary-empty")
        self.assertEqual(r.status, 200, r.body)
        j = HB.tx_json(int(r.headers["x-hibus-transaction"]))
        self.assertNotIn("request_body_base64", j)
        self.assertIn(j.get("request_body"), (None, ""))
        out = self.tx_text(int(r.headers["x-hibus-transaction"]))
        self.assertNotIn("request body (binary", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
