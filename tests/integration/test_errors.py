"""Requests hibus refuses before storing anything: 400 401 403 404 405 415 413."""

import base64
import http.client
import json
import socket
import time
import unittest

import harness

LMIS_PW = "lmis-itest-secret"
OPS_PW = "ops-itest-secret"
LMIS = ("lmis-national", LMIS_PW)
OPS = ("ops-console", OPS_PW)
JSON = {"Content-Type": "application/json"}
SMALL = b'{"facility": "FAC-1", "items": []}'

PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(
        PG.url,
        clients=[harness.client("lmis-national", ["lmis"], LMIS_PW),
                 harness.client("ops-console", ["ops"], OPS_PW),
                 harness.client("lmis-limited", ["lmis"], LMIS_PW,
                                rate_limit={"requests": 3, "per": "1m"})],
        channels=[harness.channel("lmis-stock", "/lmis/stock-reports", TARGET.url + "/stock"),
                  harness.channel("lmis-any", "/lmis/any/", TARGET.url + "/any",
                                  match_kind="path_prefix")],
        settings={"limits": {"max_body": "1KiB"}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


class RefusedTest(harness.TestCase):

    def setUp(self):
        self.rows_before = PG.count("transactions")
        self.target_before = len(TARGET.requests)

    def assertNothingStored(self):
        self.assertEqual(PG.count("transactions"), self.rows_before,
                         "a refused request created a transactions row")
        self.assertEqual(len(TARGET.requests), self.target_before,
                         "a refused request reached the target")

    def refused(self, status, code, method="POST", path="/lmis/stock-reports", body=SMALL,
                headers=None, auth=None, request_id=None):
        h = dict(JSON)
        h.update(headers or {})
        if request_id:
            h["X-Request-Id"] = request_id
        r = HB.request(method, path, body=body, headers=h, auth=auth)
        err = self.assertJsonError(r, status, code)
        if request_id:
            self.assertEqual(err["request_id"], request_id)
        self.assertNotIn("x-hibus-transaction", r.headers)
        self.assertNothingStored()
        return r, err

    def assertBasicChallenge(self, r):
        wa = r.headers.get("www-authenticate", "")
        self.assertRegex(wa, r'^Basic realm="hibus"', "WWW-Authenticate: %r" % wa)

    def raw(self, target):
        """POSTs SMALL to target (bytes, sent as they are) with valid credentials."""
        auth = base64.b64encode(("%s:%s" % LMIS).encode())
        head = (b"POST " + target + b" HTTP/1.1\r\nHost: hibus\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nAuthorization: Basic " + auth +
                b"\r\nContent-Length: %d\r\n\r\n" % len(SMALL))
        data = harness.raw_exchange(HB.port, head + SMALL)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        return harness._Response(int(lines[0].split()[1]), headers, body)

    def exchange(self, raw, timeout=10):
        """Sends raw bytes, reads until hibus closes the connection."""
        return harness.raw_exchange(HB.port, raw, timeout=timeout)

    def closed_refusal(self, data, status, code):
        """One JSON error answer of this status with its request id, then the close;
        returns the answer's body as a dict."""
        self.assertEqual(data.lower().count(b"\r\nx-request-id: "), 1, data)
        first, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 %d " % status), data[:300])
        self.assertIn(b"connection: close", first.lower(), data)
        self.assertIn(b"content-type: application/json", first.lower(), data)
        err = json.loads(body)
        self.assertEqual(err["code"], code, err)
        self.assertEqual(len(err["details"]), 1, err)
        rid = [ln.split(b": ", 1)[1].decode() for ln in first.split(b"\r\n")
               if ln.lower().startswith(b"x-request-id: ")]
        self.assertEqual(rid, [err["request_id"]], data[:400])
        return err

    def test_ambiguous_framing_is_refused_and_closed(self):
        # Content-Length with Transfer-Encoding, or two different Content-Lengths: the
        # end of the body is ambiguous (request smuggling); one answer, then close, and
        # the bytes after it are never taken as a request. A transfer coding hibus
        # cannot read gets 501 at once, not silence until the idle timeout.
        auth = b"Authorization: Basic " + base64.b64encode(("%s:%s" % LMIS).encode())
        head = (b"POST /lmis/stock-reports HTTP/1.1\r\nHost: hibus\r\n" + auth +
                b"\r\nContent-Type: application/json\r\n")
        smuggled = b"GET /health HTTP/1.1\r\nHost: hibus\r\n\r\n"
        cases = [
            (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
             400, "HIBUS_E_BAD_REQUEST", "both Content-Length and Transfer-Encoding"),
            (b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}" + smuggled,
             400, "HIBUS_E_BAD_REQUEST", "different values"),
            (b"Transfer-Encoding: gzip, chunked\r\n\r\n" + smuggled,
             501, "HIBUS_E_UNSUPPORTED", "other than chunked"),
        ]
        for rest, status, code, words in cases:
            data = self.exchange(head + rest)
            self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
            first, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(first.startswith(b"HTTP/1.1 %d " % status), data)
            self.assertIn(b"connection: close", first.lower(), data)
            err = json.loads(body)
            self.assertEqual(err["code"], code)
            self.assertIn(words, err["details"][0])
            self.assertNothingStored()

    def test_malformed_header_lines_are_refused(self):
        # A folded line (obs-fold) used to be spliced into the header's name and reach
        # the target as "X-Foldedcontinued: first"; a name with a space, or a value
        # with a control character, is no header either (RFC 9110 5.1, 5.5; RFC 9112
        # 5.2 lets a server refuse obs-fold with 400). One answer, then close.
        auth = b"Authorization: Basic " + base64.b64encode(("%s:%s" % LMIS).encode())
        head = (b"POST /lmis/any/h HTTP/1.1\r\nHost: hibus\r\n" + auth +
                b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(SMALL))
        cases = [
            (b"X-Folded: first\r\n continued\r\n", "folded", "X-Folded"),
            (b"X-Folded: first\r\n\tmore: words\r\n", "folded", "X-Folded"),
            (b"Bad Name: x\r\n", "not a valid header name", "Bad Name"),
            (b"X-Bell: a\x07b\r\n", "control character", "X-Bell"),
            (b"X-Esc\x1b[2J: x\r\n", "not a valid header name", "X-Esc\\x1B[2J"),
        ]
        for extra, words, name in cases:
            data = self.exchange(head + extra + b"\r\n" + SMALL)
            self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
            err = self.closed_refusal(data, 400, "HIBUS_E_BAD_REQUEST")
            self.assertIn(words, err["details"][0], extra)
            # a folded name is shown as libmicrohttpd joined it: "X-Foldedcontinued"
            self.assertIn('"%s' % name, err["details"][0], extra)
            self.assertNothingStored()
        # every problem is listed, not only the first
        data = self.exchange(head + b"A B: 1\r\nC\x01D: 2\r\n\r\n" + SMALL)
        err = json.loads(data.partition(b"\r\n\r\n")[2])
        self.assertEqual(len(err["details"]), 2, err)
        # obs-text (bytes >= 0x80) in a value and a tab inside it stay allowed
        r = HB.request("POST", "/lmis/any/h", body=SMALL, auth=LMIS,
                       headers={"Content-Type": "application/json", "X-Note": "a\tb"})
        self.assertEqual(r.status, 200, r.body)

    def test_host_and_request_target_are_checked(self):
        # RFC 9112 3.2: an HTTP/1.1 request without Host, or with two, or with a Host
        # that is no host[:port], gets 400; so does a request target with a space,
        # which libmicrohttpd took as part of the path ("/lmis/any/h x" was served).
        # Each in JSON with the request id, then the connection is closed.
        auth = b"Authorization: Basic " + base64.b64encode(("%s:%s" % LMIS).encode())
        rest = (auth + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(SMALL) + SMALL)
        cases = [
            (b"POST /lmis/any/h HTTP/1.1\r\n", "needs a Host header"),
            (b"POST /lmis/any/h HTTP/1.1\r\nHost: a\r\nHost: b\r\n", "more than once"),
            (b"POST /lmis/any/h HTTP/1.1\r\nHost: a b/c\r\n", "not a host name"),
            (b"POST /lmis/any/h HTTP/1.1\r\nHost: evil@a\r\n", "not a host name"),
            (b"POST /lmis/any/h x HTTP/1.1\r\nHost: a\r\n", "space or a control character"),
            (b"POST /lmis/any/h\x01 HTTP/1.1\r\nHost: a\r\n", "space or a control character"),
        ]
        for head, words in cases:
            err = self.closed_refusal(self.exchange(head + rest), 400, "HIBUS_E_BAD_REQUEST")
            self.assertEqual(err["error"], "malformed request")
            self.assertIn(words, err["details"][0], head)
            self.assertNothingStored()
        # HTTP/1.0 needs no Host; an empty Host, an address with a port and an IPv6
        # literal are all hosts
        for head in (b"POST /lmis/any/h HTTP/1.0\r\n",
                     b"POST /lmis/any/h HTTP/1.1\r\nHost: \r\nConnection: close\r\n",
                     b"POST /lmis/any/h HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n",
                     b"POST /lmis/any/h HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n"):
            data = self.exchange(head + rest)
            self.assertTrue(data.startswith(b"HTTP/1.1 200 "), (head, data[:300]))

    def test_414_and_431_are_hibus_answers(self):
        # a long request target or large headers, within the connection's memory
        # (limits.connection_memory, 16 KiB): JSON with the request id and the limit
        r = HB.request("POST", "/lmis/stock-reports?q=" + "a" * 5000, body=SMALL, headers=JSON,
                       auth=LMIS)
        err = self.assertJsonError(r, 414, "HIBUS_E_TOO_LARGE")
        self.assertIn("more than 4096", err["details"][0])
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, auth=LMIS,
                       headers=dict(JSON, **{"X-Pad-%d" % i: "b" * 1000 for i in range(10)}))
        err = self.assertJsonError(r, 431, "HIBUS_E_TOO_LARGE")
        self.assertIn("more than 8192 (limits.connection_memory / 2)", err["details"][0])
        self.assertNothingStored()

    def test_libmicrohttpd_answers_are_json(self):
        # Requests libmicrohttpd refuses before hibus sees them used to get its HTML
        # page without X-Request-Id; now hibus's JSON error of the same status, then
        # close (src/listener.c, "libmicrohttpd's own answers").
        auth = b"Authorization: Basic " + base64.b64encode(("%s:%s" % LMIS).encode())
        cases = [
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HIBUS_E_UNSUPPORTED"),
            (b"GET /health HTTP/9.9\r\nHost: a\r\n\r\n", 505, "HIBUS_E_UNSUPPORTED"),
            (b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431,
             "HIBUS_E_TOO_LARGE"),
            (b"GET /health?" + b"q" * 40000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414,
             "HIBUS_E_TOO_LARGE"),
            (b"POST /lmis/any/h HTTP/1.1\r\nHost: a\r\n" + auth +
             b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"zz\r\nabc\r\n0\r\n\r\n", 400, "HIBUS_E_BAD_REQUEST"),
        ]
        for raw, status, code in cases:
            data = self.exchange(raw)
            self.assertNotIn(b"<html>", data)
            self.closed_refusal(data, status, code)
            self.assertNothingStored()
        # hibus's own answers pass through unchanged, and the next request is served
        self.assertEqual(HB.request("GET", "/health").status, 200)

    def test_one_peer_cannot_flood_the_log(self):
        # 300 connections that each send half a request line and hang up: libmicrohttpd
        # reports each, and hibus writes at most 10 of its messages a second, plus one
        # line per second saying how many it left out
        start = len(HB.log_text())
        t0 = time.monotonic()
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", HB.port), timeout=10) as s:
                s.sendall(b"POST /lmis/stock-reports HTTP/1.1\r\nContent-Le")
        time.sleep(1.1)  # the next second's first message says what was left out
        with socket.create_connection(("127.0.0.1", HB.port), timeout=10) as s:
            s.sendall(b"POST /lmis/stock-reports HTTP/1.1\r\nContent-Le")
        harness.wait_until(lambda: "were not logged" in HB.log_text()[start:], timeout=10,
                           what="the line saying how many messages were left out")
        seconds = time.monotonic() - t0 + 1
        lines = [ln for ln in HB.log_text()[start:].splitlines() if "libmicrohttpd: " in ln]
        self.assertLessEqual(len(lines), 11 * (seconds + 1), lines[:20])
        self.assertEqual(HB.request("GET", "/health").status, 200)

    def test_400_bytes_that_are_not_utf8(self):
        # raw in the query, and percent-encoded in a path a prefix channel matches: both
        # used to reach the database and come back as 503 "database unavailable"
        for target in (b"/lmis/stock-reports?facility=\xff", b"/lmis/any/%FF%FE",
                       b"/lmis/any/ok?x=%C3%A9&y=\xc3"):
            r = self.raw(target)
            err = self.assertJsonError(r, 400, "HIBUS_E_BAD_REQUEST")
            self.assertIn("not UTF-8", err["details"][0], target)
            self.assertNotIn("retry-after", r.headers)
            self.assertNothingStored()
        # percent-encoded UTF-8 is text like any other
        r = self.raw(b"/lmis/any/caf%C3%A9?q=%E2%82%AC")
        self.assertEqual(r.status, 200, r.body)

    def test_401_without_credentials(self):
        r, err = self.refused(401, "HIBUS_E_AUTH", request_id="itest-401-none")
        self.assertBasicChallenge(r)
        self.assertTrue(err["details"], "401 must list details")

    def test_401_wrong_password(self):
        r, err = self.refused(401, "HIBUS_E_AUTH", auth=("lmis-national", "not-the-password"),
                              request_id="itest-401-wrong")
        self.assertBasicChallenge(r)
        self.assertTrue(err["details"], "401 must list details")
        self.assertNotIn("not-the-password", r.body.decode("utf-8", "replace"))

    def test_401_unknown_client(self):
        r, _ = self.refused(401, "HIBUS_E_AUTH", auth=("nobody", LMIS_PW))
        self.assertBasicChallenge(r)

    def test_401_malformed_authorization(self):
        r, _ = self.refused(401, "HIBUS_E_AUTH", headers={"Authorization": "Basic %%%not-base64"})
        self.assertBasicChallenge(r)

    def test_429_after_failed_logins(self):
        # limits.login_failures (10) wrong passwords from one address, counting the
        # ones earlier tests sent: then 429 with Retry-After before any password is
        # checked, the right one included; after the wait the right one works again
        # and clears the count.
        wrong = ("lmis-national", "guess")
        r = None
        for _ in range(11):
            r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=wrong)
            if r.status != 401:
                break
        err = self.assertJsonError(r, 429, "HIBUS_E_TOO_MANY")
        self.assertIn("too many failed logins", err["details"][0])
        self.assertEqual(r.headers.get("retry-after"), "1")
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=LMIS)
        self.assertJsonError(r, 429, "HIBUS_E_TOO_MANY")
        self.assertNothingStored()
        time.sleep(1.1)
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=LMIS)
        self.assertEqual(r.status, 200, r.body)
        self.rows_before = PG.count("transactions")
        self.target_before = len(TARGET.requests)
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=wrong)
        self.assertJsonError(r, 401, "HIBUS_E_AUTH")

    def test_429_past_the_client_rate_limit(self):
        # lmis-limited may send 3 requests a minute, all at once: the 4th gets 429 with
        # the time until the next one, and nothing is stored; other clients go on
        limited = ("lmis-limited", LMIS_PW)
        for _ in range(3):
            r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=limited)
            self.assertEqual(r.status, 200, r.body)
        self.rows_before = PG.count("transactions")
        self.target_before = len(TARGET.requests)
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=limited)
        err = self.assertJsonError(r, 429, "HIBUS_E_TOO_MANY")
        self.assertIn('client "lmis-limited" may send 3 requests per 60000 ms', err["details"][0])
        self.assertIn(r.headers.get("retry-after"), ("19", "20", "21"))
        self.assertNothingStored()
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON, auth=LMIS)
        self.assertEqual(r.status, 200, r.body)

    def test_403_client_without_role(self):
        r, _ = self.refused(403, "HIBUS_E_FORBIDDEN", auth=OPS, request_id="itest-403")
        self.assertNotIn("www-authenticate", r.headers)

    def test_404_no_channel(self):
        self.refused(404, "HIBUS_E_NOT_FOUND", path="/lmis/no-such-thing", auth=LMIS,
                     request_id="itest-404")

    def test_405_method_not_allowed(self):
        r, _ = self.refused(405, None, method="GET", body=None, auth=LMIS, request_id="itest-405")
        allow = [m.strip() for m in r.headers.get("allow", "").split(",")]
        self.assertIn("POST", allow, "Allow: %r" % r.headers.get("allow"))
        self.assertNotIn("GET", allow)

    def test_415_content_type(self):
        self.refused(415, None, headers={"Content-Type": "text/plain"}, auth=LMIS,
                     request_id="itest-415")

    def test_413_body_too_large(self):
        big = b'{"pad": "' + b"x" * 2048 + b'"}'
        self.refused(413, "HIBUS_E_TOO_LARGE", body=big, auth=LMIS, request_id="itest-413")

    def test_413_chunked_body_too_large(self):
        """No Content-Length: the limit must hold while reading the stream."""
        conn = http.client.HTTPConnection("127.0.0.1", HB.port, timeout=30)
        try:
            hdrs = dict(JSON)
            hdrs["X-Request-Id"] = "itest-413-chunked"
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % LMIS).encode()).decode()
            chunks = [b'{"pad": "'] + [b"y" * 256] * 8 + [b'"}']
            try:
                conn.request("POST", "/lmis/stock-reports", body=iter(chunks), headers=hdrs,
                             encode_chunked=True)
            except (BrokenPipeError, ConnectionResetError):
                pass  # hibus may answer and close before reading it all
            resp = conn.getresponse()
            data = resp.read()
            h = {k.lower(): v for k, v in resp.getheaders()}
            r = harness._Response(resp.status, h, data)
        finally:
            conn.close()
        self.assertJsonError(r, 413, "HIBUS_E_TOO_LARGE")
        self.assertNothingStored()

    def test_body_under_limit_is_accepted(self):
        """The 1KiB limit refuses only what is larger."""
        body = b'{"pad": "' + b"z" * 900 + b'"}'
        r = HB.request("POST", "/lmis/stock-reports", body=body, headers=JSON, auth=LMIS)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(PG.count("transactions"), self.rows_before + 1)
        self.assertEqual(TARGET.requests[-1].body, body)

    def test_generated_request_id_matches_body(self):
        r = HB.request("POST", "/lmis/stock-reports", body=SMALL, headers=JSON)
        err = self.assertJsonError(r, 401, "HIBUS_E_AUTH")
        self.assertTrue(err["request_id"])
        self.assertNothingStored()


if __name__ == "__main__":
    unittest.main(verbosity=2)
