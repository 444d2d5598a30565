"""bench/slow-clients: held connections against hibus, nginx beside it (see that script).

Three cases, each printed as one line:
  idle     N connections that send nothing: RSS and threads of hibus and of nginx
           holding them, and whether /health and a POST still get through
  slowloris N+100 connections that send a partial request and then one header byte
           every 2 s (more than limits.max_connections = N): /health probes answered
  trickle  one request sent a byte a second: when hibus cuts it off
  kept     N keep-alive connections that each sent one GET /health and then stay
           idle: RSS of hibus and of nginx holding them
"""
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import harness  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_threads(pids):
    rss = threads = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
    return rss / 1024.0, threads


def hold(port, n, first=b""):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first:
            s.sendall(first)
        socks.append(s)
    return socks


def closed(s):
    """Whether the peer closed s (without waiting)."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def probe(port, path="/health", timeout=2.0):
    """Seconds a GET took, or None when it was not answered in time."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            if not data.startswith(b"HTTP/1.1 200"):
                return None
    except OSError:
        return None
    return time.monotonic() - t0


def nginx_idle(n, request=False):
    if not shutil.which("nginx"):
        return None
    d = tempfile.mkdtemp(prefix="bench-nginx.")
    port = harness.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("worker_processes 1; pid %s/pid; error_log %s/err;\n"
                "events { worker_connections %d; }\n"
                "http { access_log off; keepalive_timeout 300;\n"
                "  server { listen 127.0.0.1:%d; location / { return 200 ok; } } }\n"
                % (d, d, n + 100, port))
    subprocess.run(["nginx", "-c", conf, "-p", d, "-g", "daemon on;"], check=True)
    harness.wait_until(lambda: os.path.exists(d + "/pid"), timeout=10, what="nginx")
    master = int(open(d + "/pid").read())
    kids = [int(p) for p in subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                           text=True).stdout.split()]
    socks = hold(port, n)
    if request:
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
    time.sleep(2)
    fig = rss_threads([master] + kids)
    for s in socks:
        s.close()
    subprocess.run(["nginx", "-c", conf, "-p", d, "-s", "stop"], check=False)
    return fig


def main():
    pg = harness.PgCluster().start()
    target = harness.Target().start()
    pw = "bench-secret"
    hb = harness.Hibus(pg.url, clients=[harness.client("lmis", ["lmis"], pw)],
                       channels=[harness.channel("c", "/lmis/stock-reports", target.url + "/s")],
                       settings={"limits": {"max_connections": N, "connections_per_address": 0},
                                 "log": {"level": "warn"}})
    hb.start()
    try:
        base, base_threads = rss_threads([hb.proc.pid])
        # idle
        socks = hold(hb.port, N)
        time.sleep(2)
        rss, threads = rss_threads([hb.proc.pid])
        health = probe(hb.port)
        try:
            post = hb.request("POST", "/lmis/stock-reports", body=b"{}", auth=("lmis", pw),
                              headers={"Content-Type": "application/json"}, timeout=10).status
        except OSError as e:
            post = "REFUSED (%s)" % e.__class__.__name__
        for s in socks:
            s.close()
        ng = nginx_idle(N)
        print("idle %d: hibus RSS %.1f MiB (%.1f before, +%.1f KiB/connection), %d threads; "
              "/health %s; POST %s | nginx RSS %s" % (
                  N, rss, base, (rss - base) * 1024 / N, threads,
                  "%.1f ms" % (health * 1000) if health is not None else "NOT ANSWERED", post,
                  "%.1f MiB, %d threads" % ng if ng else "n/a"))
        time.sleep(1)
        # slowloris
        socks = hold(hb.port, N + 100,
                     b"POST /lmis/stock-reports HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answered, times = 0, []
        t_end = time.monotonic() + 20
        while time.monotonic() < t_end:
            for s in socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            t = probe(hb.port)
            if t is not None:
                answered += 1
                times.append(t)
            time.sleep(2)
        alive = 0
        for s in socks:
            try:
                s.send(b"a")
                alive += 1
            except OSError:
                pass
            s.close()
        print("slowloris %d (limit %d): /health answered %d of %d probes%s; %d slow "
              "connections still open after 20 s" % (
                  N + 100, N, answered, 10, " (median %.1f ms)" % (
                      sorted(times)[len(times) // 2] * 1000) if times else "", alive))
        time.sleep(1)
        # trickle
        s = socket.create_connection(("127.0.0.1", hb.port), timeout=5)
        req = b"POST /lmis/stock-reports HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 120
        t0 = time.monotonic()
        cut = None
        for b in req:
            try:
                s.send(bytes([b]))
                s.settimeout(1.0)
                if s.recv(1024) == b"":
                    cut = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                cut = time.monotonic() - t0
                break
        s.close()
        print("trickle (a byte a second): %s" % (
            "cut off after %.0f s" % cut if cut else "still open after %d s" % len(req)))
        time.sleep(1)
        # kept-alive after one request each
        base, _ = rss_threads([hb.proc.pid])
        socks = hold(hb.port, N)
        for s in socks:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
        time.sleep(0.2)
        peak, _ = rss_threads([hb.proc.pid])
        time.sleep(3)  # kept-alive past limits.idle_connections (256) are closed after 1 s
        rss, threads = rss_threads([hb.proc.pid])
        still = sum(1 for s in socks if not closed(s))
        for s in socks:
            s.close()
        ng = nginx_idle(N, request=True)
        print("kept %d after one request each: hibus RSS %.1f MiB at once (%.1f before), "
              "%.1f MiB 3 s later with %d still open, %d threads | nginx RSS %s" % (
                  N, peak, base, rss, still, threads, "%.1f MiB" % ng[0] if ng else "n/a"))
    finally:
        harness.stop_all(hb, target, pg)


main()
