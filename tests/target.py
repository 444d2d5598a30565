#!/usr/bin/env python3
"""A small HTTP target for hibus integration tests (standard library only).

It records every request it receives and answers:

  /status/NNN        status NNN with a small JSON body
  /slow/SECONDS      sleeps SECONDS (a float), then 200
  .../chunked        200, the body sent with chunked transfer coding, plus the
                     hop-by-hop headers Connection and Keep-Alive
  anything else      200 with {"received": true, "path": ..., "bytes": N}

Every answer carries "X-Target: hibus-test-target" so a test can check that the
target's headers reach the client. Speaks HTTP/1.1 with keep-alive and reads
bodies sent with Content-Length or chunked transfer coding.

In tests:   t = Target(); t.start(); ... t.requests ...; t.stop()
Standalone: python3 tests/target.py --port N   (serves until SIGTERM or Ctrl-C)
"""

import argparse
import http.server
import json
import re
import signal
import sys
import threading
import time
import urllib.parse


class RecordedRequest:
    """One request as the target saw it."""

    def __init__(self, method, path, query, headers, body, received_at):
        self.method = method
        self.path = path            # without the query string
        self.query = query          # raw query string ("" when none)
        self.headers = headers      # list of (name, value) as received
        self.body = body            # bytes, de-chunked
        self.received_at = received_at

    def header(self, name, default=None):
        """First value of header name (case-insensitive), or default."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def has_header(self, name):
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self.headers)

    def __repr__(self):
        return "<%s %s%s%s, %d bytes>" % (self.method, self.path,
                                          "?" if self.query else "", self.query,
                                          len(self.body))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hibus-test-target/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        if self.server.verbose:
            sys.stderr.write("target: " + (fmt % args) + "\n")

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        body = self._read_body()
        parts = urllib.parse.urlsplit(self.path)
        rec = RecordedRequest(self.command, parts.path, parts.query,
                              list(self.headers.items()), body, time.time())
        self.server.target._record(rec)

        status = 200
        payload = {"received": True, "path": parts.path, "bytes": len(body)}
        m = re.fullmatch(r"(?:.*)/status/(\d{3})", parts.path)
        if m:
            status = int(m.group(1))
            payload = {"status": status, "path": parts.path, "bytes": len(body)}
        m = re.fullmatch(r"(?:.*)/slow/([0-9.]+)", parts.path)
        if m:
            time.sleep(float(m.group(1)))
        out = b"" if status in (204, 304) or self.command == "HEAD" else \
            json.dumps(payload).encode()
        if parts.path.endswith("/chunked"):
            self._send_chunked(out)
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Target", "hibus-test-target")
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if out:
                self.wfile.write(out)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_chunked(self, out):
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Target", "hibus-test-target")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "keep-alive")
            self.send_header("Keep-Alive", "timeout=30")
            self.end_headers()
            for i in range(0, len(out), 7):
                piece = out[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Target:
    """The HTTP target, run in a background thread of the test process."""

    def __init__(self, port=0, host="127.0.0.1", verbose=False):
        self._host = host
        self._want_port = port
        self._verbose = verbose
        self._lock = threading.Condition()
        self._requests = []
        self._server = None
        self._thread = None

    def start(self):
        self._server = _Server((self._host, self._want_port), _Handler)
        self._server.target = self
        self._server.verbose = self._verbose
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="target", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _record(self, rec):
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()

    @property
    def requests(self):
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self):
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, n, timeout=10.0):
        """Waits until at least n requests arrived; returns the list."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self._requests)


def main(argv=None):
    ap = argparse.ArgumentParser(description="HTTP target for hibus tests and demos")
    ap.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--quiet", action="store_true", help="do not log requests")
    args = ap.parse_args(argv)

    server = _Server((args.host, args.port), _Handler)
    server.verbose = not args.quiet

    class _Standalone:
        def _record(self, rec):
            pass

    server.target = _Standalone()

    def on_signal(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("target listening on %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
