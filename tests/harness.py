"""Integration test harness for hibus (Python 3 standard library only).

Runs real processes: a private PostgreSQL 15 cluster made with initdb in the build
tree (PgCluster), an HTTP target in a thread of the test process (Target: target.py's,
plus answers as an OpenHIM mediator), the DHIS2 simulator tests/dhis2-sim (DHIS2Sim)
and `hibus serve` as a subprocess (Hibus, whose `files` adds e.g. mapping files to its
configuration directory).

Environment (set by ctest, see tests/CMakeLists.txt):
  HIBUS_BIN         the hibus binary
  HIBUS_DHIS2_SIM   the DHIS2 simulator binary (DHIS2Sim)
  HIBUS_SOURCE_DIR  the source tree (for conf/)
  HIBUS_BUILD_DIR   the build tree; work files go to $HIBUS_BUILD_DIR/itest/<test>-<pid>
  HIBUS_ITEST_KEEP  set to 1 to keep the work directory even when every test passed

Everything started here is registered and torn down at exit, also when a test
fails; the work directory (logs, configs, the cluster) is kept when a test failed.
"""

import atexit
import base64
import collections
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import target as _target  # noqa: E402
from target import RecordedRequest  # noqa: E402,F401  (re-exported)

SOURCE_DIR = os.environ.get("HIBUS_SOURCE_DIR") or os.path.dirname(HERE)
BUILD_DIR = os.environ.get("HIBUS_BUILD_DIR")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class HarnessError(Exception):
    """The environment could not be set up (not a hibus behaviour under test)."""


# ---------------------------------------------------------------------------
# Bookkeeping: work directory, cleanup of everything started, test outcome

_work_dir = None
_live = []                 # objects with a _cleanup() method, newest last
_live_lock = threading.Lock()
_outcome = {"ran": 0, "failed": 0, "harness_errors": 0}
_outside_dirs = []         # work files that had to live outside the work directory


def work_dir():
    """$HIBUS_BUILD_DIR/itest/<testname>-<pid>, made on first use."""
    global _work_dir
    if _work_dir is None:
        base = BUILD_DIR or tempfile.gettempdir()
        name = os.path.splitext(os.path.basename(sys.argv[0] or "itest"))[0] or "itest"
        itest = os.path.join(base, "itest")
        os.makedirs(itest, exist_ok=True)
        os.chmod(itest, 0o755)
        _work_dir = os.path.join(itest, "%s-%d" % (name, os.getpid()))
        if os.path.exists(_work_dir):
            shutil.rmtree(_work_dir)
        os.makedirs(_work_dir)
        os.chmod(_work_dir, 0o755)
    return _work_dir


def _register(obj):
    with _live_lock:
        _live.append(obj)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def _cleanup_all():
    while True:
        with _live_lock:
            if not _live:
                break
            obj = _live.pop()
        try:
            obj._cleanup()
        except Exception as e:  # keep going: everything must be torn down
            sys.stderr.write("harness: cleanup of %r failed: %s\n" % (obj, e))
            _outcome["harness_errors"] += 1
    keep = os.environ.get("HIBUS_ITEST_KEEP") == "1"
    ok = _outcome["ran"] > 0 and _outcome["failed"] == 0 and _outcome["harness_errors"] == 0
    for d in ([_work_dir] if _work_dir else []) + _outside_dirs:
        if not os.path.isdir(d):
            continue
        if ok and not keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            sys.stderr.write("harness: work files kept in %s\n" % d)


atexit.register(_cleanup_all)


def _on_sigterm(signum, frame):
    # ctest (or a user) stops us: turn it into SystemExit so atexit cleans up.
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass


_WATCHDOG = r"""
import subprocess, sys
if sys.stdin.buffer.read():  # a byte: cancelled; bare EOF: the test process is gone
    sys.exit(0)
subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL, timeout=60)
"""


class Watchdog:
    """Runs argv once this test process is gone, however it went: a last resort against
    orphaned postgres and hibus processes when the harness is killed (ctest timeout)."""

    def __init__(self, argv):
        self.proc = subprocess.Popen([sys.executable, "-c", _WATCHDOG] + list(argv),
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def disarm(self):
        """Cancels: the watchdog exits without running argv."""
        if self.proc is not None:
            try:
                self.proc.stdin.write(b"x")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc = None


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_all(*things):
    """Stops each of things that is not None, in order (a tearDownModule's work): every
    one is stopped even when an earlier one fails; the first failure is raised after."""
    first = None
    for t in things:
        if t is None:
            continue
        try:
            t.stop()
        except BaseException as e:  # keep stopping the rest, report the first
            if first is None:
                first = e
    if first is not None:
        raise first


def wait_until(fn, timeout=10.0, interval=0.1, what="condition"):
    """Calls fn until it returns a true value; returns it, or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # the thing polled may not be up yet
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %s)" % last_exc if last_exc else ""))
        time.sleep(interval)


def tail_text(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def sanitizer_report(text):
    """The sanitizer error lines in text, or None."""
    hits = [ln for ln in text.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]
    return "\n".join(hits) if hits else None


def hibus_bin():
    b = os.environ.get("HIBUS_BIN")
    if not b:
        raise HarnessError("HIBUS_BIN is not set: run under ctest, or export HIBUS_BIN=/path/to/hibus")
    if not os.access(b, os.X_OK):
        raise HarnessError("HIBUS_BIN=%s is not an executable file" % b)
    return b


def child_env(extra=None):
    """os.environ plus sanitizer defaults plus extra (a value of None unsets)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


# ---------------------------------------------------------------------------
# PostgreSQL

def pg_bindir():
    d = "/usr/lib/postgresql/15/bin"
    if os.path.exists(os.path.join(d, "initdb")):
        return d
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                           check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise HarnessError("cannot find PostgreSQL's binaries: %s" % e)
    if not os.path.exists(os.path.join(d, "initdb")):
        raise HarnessError("no initdb in %s (install postgresql-15)" % d)
    return d


class PgCluster:
    """A private PostgreSQL cluster; superuser "hibus", trust auth, TCP on 127.0.0.1."""

    def __init__(self, root=None, name="pg"):
        self.dir = os.path.join(root or work_dir(), name)
        self.datadir = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.bindir = pg_bindir()
        self.port = None
        self.running = False
        self._initialized = False
        self._as_postgres = os.geteuid() == 0
        self._sockdir = None
        self._tmp_sockdir = False
        self._watchdog = None

    def __repr__(self):
        return "<PgCluster %s port=%s>" % (self.dir, self.port)

    # run a PostgreSQL program, as the postgres user when we are root
    def _cmd(self, args):
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--"] + args
        return args

    def _run(self, args, timeout=90, check=True):
        r = subprocess.run(self._cmd(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, cwd=self.dir, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise HarnessError("%s failed (exit %d):\n%s\n--- %s ---\n%s" % (
                " ".join(args), r.returncode, r.stdout, self.logfile, tail_text(self.logfile, 30)))
        return r

    def _chown(self, path):
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _postgres_can_enter(self, path):
        r = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", path],
                           stdin=subprocess.DEVNULL, capture_output=True)
        return r.returncode == 0

    def init(self):
        parent = os.path.dirname(self.dir)
        os.makedirs(parent, exist_ok=True)
        if self._as_postgres and not self._postgres_can_enter(parent):
            # e.g. a build tree under /root: the postgres user cannot reach it
            self.dir = tempfile.mkdtemp(prefix="hibus-itest-pg-")
            _outside_dirs.append(self.dir)
            os.rmdir(self.dir)
            self.datadir = os.path.join(self.dir, "data")
            self.logfile = os.path.join(self.dir, "postgres.log")
            sys.stderr.write("harness: %s is not reachable by the postgres user; cluster in %s\n"
                             % (parent, self.dir))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self._chown(self.dir)
        # Unix socket paths are limited to ~107 bytes: use /tmp when the build tree is deep.
        if len(os.path.join(self.dir, ".s.PGSQL.65535.lock")) < 100:
            self._sockdir = self.dir
        else:
            self._sockdir = tempfile.mkdtemp(prefix="hibus-pg-")
            os.chmod(self._sockdir, 0o755)
            self._chown(self._sockdir)
            self._tmp_sockdir = True
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-A", "trust",
                   "-U", "hibus", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"
                   if _has_locale("C.UTF-8") else "--no-locale"])
        self._initialized = True
        return self

    def start(self):
        if not self._initialized:
            self.init()
        _register(self)
        fixed = self.port is not None   # a restart keeps its port (URLs were handed out)
        last = None
        for _ in range(8 if fixed else 5):
            port = self.port if fixed else free_port()
            opts = ("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off "
                    "-c max_connections=100 -c shared_buffers=16MB" % (port, self._sockdir))
            r = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                           "-l", self.logfile, "-w", "-t", "60", "-o", opts, "start"],
                          check=False)
            if r.returncode == 0:
                self.port = port
                self.running = True
                if self._watchdog is None:
                    self._watchdog = Watchdog(self._cmd([
                        os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m",
                        "immediate", "-w", "stop"]))
                return self
            last = r.stdout + "\n" + tail_text(self.logfile, 20)
            if "could not bind" not in last and "in use" not in last:
                break
            time.sleep(0.5)
        raise HarnessError("could not start PostgreSQL in %s:\n%s" % (self.dir, last))

    def stop(self, mode="fast"):
        if self.running:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", mode,
                       "-w", "-t", "60", "stop"], check=False)
            self.running = False

    def destroy(self):
        try:
            self.stop()
        finally:
            if self._watchdog:
                self._watchdog.disarm()
            _unregister(self)
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._tmp_sockdir:
                shutil.rmtree(self._sockdir, ignore_errors=True)

    def _cleanup(self):
        # at exit: stop it, keep the files (the work dir decides)
        self.stop("immediate")
        if self._watchdog:
            self._watchdog.disarm()
        if self._tmp_sockdir:
            shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    @property
    def url(self):
        return "postgresql://hibus@127.0.0.1:%d/postgres" % self.port

    def psql(self, sql, check=True):
        """Runs sql with psql; returns the rows as lists of strings (NULL is "").

        Rows are separated by the ASCII record separator, so values may contain
        newlines; fields by a tab."""
        env = dict(os.environ, PGCONNECT_TIMEOUT="5")
        r = subprocess.run(["/usr/bin/psql", "-X", "-At", "-F", "\t", "-R", "\x1e",
                            "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", sql],
                           capture_output=True, text=True, env=env, timeout=60,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise HarnessError("psql failed (exit %d) on: %s\n%s" % (r.returncode, sql, r.stderr))
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if out.endswith("\x1e"):
            out = out[:-1]
        if out == "":
            return []
        return [rec.split("\t") for rec in out.split("\x1e")]

    def scalar(self, sql):
        """The single value of a one-row, one-column query (None when no row)."""
        rows = self.psql(sql)
        if not rows:
            return None
        if len(rows) != 1 or len(rows[0]) != 1:
            raise HarnessError("expected one value from %s, got %r" % (sql, rows))
        return rows[0][0]

    def count(self, table, where="true"):
        return int(self.scalar("SELECT count(*) FROM %s WHERE %s" % (table, where)))

    def row(self, sql):
        """One row as a dict column -> value (via row_to_json; NULL is None), or None."""
        v = self.scalar("SELECT row_to_json(q) FROM (%s) q" % sql)
        return None if v is None else json.loads(v)

    def rows(self, sql):
        """Every row as a dict (via row_to_json)."""
        return [json.loads(r[0]) for r in self.psql("SELECT row_to_json(q) FROM (%s) q" % sql)]


_locale_cache = {}


def _has_locale(name):
    if name not in _locale_cache:
        try:
            out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
            norm = {x.lower().replace("-", "") for x in out.split()}
            _locale_cache[name] = name.lower().replace("-", "") in norm
        except OSError:
            _locale_cache[name] = False
    return _locale_cache[name]


# ---------------------------------------------------------------------------
# YAML (a small emitter for the config shapes hibus uses)

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists of scalars as flow lists, lists of dicts as blocks."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                if not v:
                    out.append("%s%s: {}" % (pad, k))
                else:
                    out.append("%s%s:" % (pad, k))
                    out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (list, tuple)):
                if all(not isinstance(x, (dict, list, tuple)) for x in v):
                    out.append("%s%s: [%s]" % (pad, k, ", ".join(_scalar(x) for x in v)))
                else:
                    out.append("%s%s:" % (pad, k))
                    out.append(to_yaml(list(v), indent + 2))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 2)
                out.append(pad + "- " + body[indent + 2:])
            else:
                out.append("%s- %s" % (pad, _scalar(item)))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def write_file(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


# ---------------------------------------------------------------------------
# hibus

_hash_cache = {}


def password_hash(password):
    """A crypt(3) hash of password made by `hibus passwd` (cached per process)."""
    if password not in _hash_cache:
        r = subprocess.run([hibus_bin(), "passwd"], input=password, capture_output=True,
                           text=True, env=child_env(), timeout=60)
        rep = sanitizer_report(r.stderr)
        if rep:
            raise AssertionError("sanitizer error in hibus passwd:\n" + r.stderr)
        h = r.stdout.strip()
        if r.returncode != 0 or not h.startswith("$") or "\n" in h:
            raise AssertionError("hibus passwd failed (exit %d): stdout=%r stderr=%r" % (
                r.returncode, r.stdout, r.stderr))
        _hash_cache[password] = h
    return _hash_cache[password]


def client(id, roles, password, name=None, **extra):
    """A clients.yaml entry with a real hash."""
    d = {"id": id, "name": name or id, "roles": list(roles),
         "password_hash": password_hash(password)}
    d.update(extra)
    return d


def channel(name, path, target_url, methods=("POST",), content_types=("application/json",),
            roles=("lmis",), clients=None, timeout="10s", priority=10, match_kind="path",
            route_name="archive", **extra):
    """A sync channel with one primary http route."""
    match = {match_kind: path}
    if methods is not None:
        match["methods"] = list(methods)
    if content_types is not None:
        match["content_types"] = list(content_types)
    allow = {}
    if roles:
        allow["roles"] = list(roles)
    if clients:
        allow["clients"] = list(clients)
    d = {"name": name, "priority": priority, "match": match, "allow": allow, "mode": "sync",
         "routes": [{"name": route_name, "mediator": "http", "url": target_url,
                     "primary": True, "timeout": timeout}]}
    d.update(extra)
    return d


def _merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


Response = collections.namedtuple("Response", "status headers body")


class _Response(Response):
    """(status, headers with lower-case names, body bytes), plus .json()."""

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("response body is not JSON: %r" % self.body[:500])


def http_request(port, method, path, body=None, headers=None, auth=None, timeout=30,
                 host="127.0.0.1", tls=None):
    """tls: an ssl.SSLContext to speak HTTPS with, or None for plain HTTP."""
    hdrs = dict(headers or {})
    if auth is not None:
        tok = base64.b64encode(("%s:%s" % auth).encode()).decode()
        hdrs["Authorization"] = "Basic " + tok
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=tls) if tls
            else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        h = {}
        for k, v in resp.getheaders():
            k = k.lower()
            h[k] = h[k] + ", " + v if k in h else v
        return _Response(resp.status, h, data)
    finally:
        conn.close()


def raw_exchange(port, data, timeout=30):
    """Sends bytes exactly as given on a new connection to 127.0.0.1:port and returns
    every byte received until the peer closes (for requests http.client would not
    send: raw UTF-8 in a target, folded headers, ambiguous framing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class Hibus:
    """A `hibus serve` with its own configuration directory.

    channels: list of dicts (written as channels/<name>.yaml) or (filename, text) pairs.
    clients:  list of dicts (see client()); roles: the declared roles.
    settings: dict merged into the default hibus.yaml."""

    instances = []
    _counter = 0

    def __init__(self, database_url, channels=(), clients=(), roles=("lmis", "ops"),
                 settings=None, env=None, name="hibus", root=None, files=None):
        Hibus._counter += 1
        self.name = "%s%d" % (name, Hibus._counter)
        self.dir = os.path.join(root or work_dir(), self.name)
        self.conf_dir = os.path.join(self.dir, "conf")
        self.config_path = os.path.join(self.conf_dir, "hibus.yaml")
        self.log_path = os.path.join(self.dir, "hibus.log")
        self.database_url = database_url
        self.channels = list(channels)
        self.clients = list(clients)
        self.roles = list(roles)
        self.settings = settings or {}
        # extra files written under conf/ by write_config: {relative path: text},
        # e.g. {"mappings/national.yaml": ...} (a dict value is written as YAML)
        self.files = dict(files or {})
        self.extra_env = dict(env or {})
        self.port = None
        self.tls = None  # an ssl.SSLContext once hibus speaks HTTPS (listen.tls)
        self.proc = None
        self.exit_code = None
        self.started_at = None
        self.stopped_at = None
        self._log = None
        self._watchdog = None
        self._children = []
        os.makedirs(self.dir, exist_ok=True)
        Hibus.instances.append(self)

    def __repr__(self):
        return "<Hibus %s port=%s pid=%s>" % (self.name, self.port,
                                             self.proc.pid if self.proc else None)

    @property
    def env(self):
        e = {"HIBUS_DATABASE_URL": self.database_url}
        e.update(self.extra_env)
        return child_env(e)

    def hibus_yaml(self):
        d = {
            "listen": {"address": "127.0.0.1", "port": self.port or 5001},
            "database": {"url": "${HIBUS_DATABASE_URL}", "pool": 4, "connect_timeout": "3s"},
            "limits": {"max_body": "10MiB", "max_connections": 64, "connection_timeout": "60s"},
            "log": {"level": "debug", "format": "text"},
            "redact_headers": ["X-Api-Key"],
            "clients": "clients.yaml",
            "channels": "channels",
        }
        return _merge(d, self.settings)

    def write_config(self):
        if os.path.isdir(self.conf_dir):
            shutil.rmtree(self.conf_dir)
        os.makedirs(os.path.join(self.conf_dir, "channels"))
        write_file(self.config_path, "# written by tests/harness.py\n" + to_yaml(self.hibus_yaml()))
        write_file(os.path.join(self.conf_dir, "clients.yaml"),
                   to_yaml({"roles": self.roles, "clients": self.clients}))
        for ch in self.channels:
            if isinstance(ch, dict):
                fname, text = ch["name"] + ".yaml", to_yaml(ch)
            else:
                fname, text = ch
            write_file(os.path.join(self.conf_dir, "channels", fname), text)
        for rel, text in self.files.items():
            if isinstance(text, (dict, list)):
                text = to_yaml(text)
            write_file(os.path.join(self.conf_dir, rel), text)
        return self.config_path

    def start(self, timeout=20.0, port=None):
        """Writes the configuration and starts `hibus serve` on a free port, or on port
        (kept through tries: a restart after kill9() must answer where clients know it)."""
        bin_ = hibus_bin()
        _register(self)
        last = None
        for _ in range(8 if port else 3):
            self.port = port or free_port()
            self.write_config()
            self._log = open(self.log_path, "ab")
            self._log.write(("=== hibus serve on port %d at %s ===\n" % (
                self.port, time.strftime("%H:%M:%S"))).encode())
            self._log.flush()
            self.started_at = time.time()
            self.stopped_at = None
            self.exit_code = None
            self.proc = subprocess.Popen([bin_, "serve", "-c", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
            self._watchdog = Watchdog(["kill", "-KILL", str(self.proc.pid)])
            try:
                self._wait_healthy(timeout)
                return self
            except HarnessError as e:
                last = e
                log = self.log_text()
                self._kill()
                if "in use" in log.lower() and "bind" in log.lower():
                    if port:
                        time.sleep(0.5)  # the same port: wait for it to be free
                    continue  # another process took our port: try another
                raise
        raise last

    def restart(self, timeout=20.0):
        """Starts it again (after stop() or kill9()): same port, same configuration,
        same database, the log appended to."""
        if self.running:
            raise HarnessError("%r is still running" % self)
        return self.start(timeout=timeout, port=self.port)

    def reload(self, marker="configuration reloaded", timeout=10):
        """Writes the configuration out again, sends SIGHUP and waits until the log
        says marker once more than before."""
        before = self.log_text().count(marker)
        self.write_config()
        os.kill(self.proc.pid, signal.SIGHUP)
        wait_until(lambda: self.log_text().count(marker) > before, timeout=timeout,
                   what="%r in the log of %s" % (marker, self.name))

    def kill9(self):
        """SIGKILL, as a crash or an OOM killer would: no drain, no release of leases.
        Returns the exit code (-9). The log is still checked for sanitizer reports."""
        if self.proc is None:
            raise HarnessError("%r is not running" % self)
        try:
            self.proc.kill()
            self.exit_code = self.proc.wait(30)
            self.stopped_at = time.time()
        finally:
            self.proc = None
            self._disarm()
            self._close_log()
            _unregister(self)
        self.check_sanitizers()
        return self.exit_code

    def clone(self, name="hibus"):
        """Another Hibus on the same database with the same channels, clients, settings
        and files (its own directory and port): a second node of one installation."""
        return Hibus(self.database_url, channels=self.channels, clients=self.clients,
                     roles=self.roles, settings=json.loads(json.dumps(self.settings)),
                     env=self.extra_env, name=name, root=os.path.dirname(self.dir),
                     files=self.files)

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_code = rc
                raise HarnessError("hibus serve exited with %d before /health answered; log:\n%s"
                                   % (rc, self.log_tail()))
            try:
                r = self.request("GET", "/health", timeout=2)
                if r.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                raise HarnessError("hibus /health did not answer 200 within %.0fs; log:\n%s"
                                   % (timeout, self.log_tail()))
            time.sleep(0.1)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return tail_text(self.log_path, lines)

    def check_sanitizers(self):
        rep = sanitizer_report(self.log_text())
        if rep:
            raise AssertionError("sanitizer error in hibus (%s):\n%s\n--- log tail ---\n%s" % (
                self.log_path, rep, self.log_tail(120)))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to exit; returns its exit code (raises on timeout)."""
        self.exit_code = self.proc.wait(timeout)
        self.stopped_at = time.time()
        return self.exit_code

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0, expect_code=0):
        """SIGTERM, wait; asserts a clean exit (expect_code, no sanitizer report)."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill()
                    _outcome["failed"] += 1
                    raise AssertionError("hibus did not exit within %.0fs of SIGTERM; log:\n%s"
                                         % (timeout, self.log_tail()))
            self.exit_code = self.proc.returncode
            self.stopped_at = time.time()
        finally:
            self.proc = None
            self._disarm()
            self._close_log()
            _unregister(self)
            self._stop_children()
        try:
            self.check_sanitizers()
        except AssertionError:
            _outcome["failed"] += 1
            raise
        if expect_code is not None and self.exit_code != expect_code:
            _outcome["failed"] += 1
            raise AssertionError("hibus exited with %s (expected %s); log:\n%s" % (
                self.exit_code, expect_code, self.log_tail()))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.exit_code = self.proc.returncode
        self.stopped_at = time.time()
        self.proc = None
        self._disarm()
        self._close_log()

    def _disarm(self):
        if self._watchdog is not None:
            self._watchdog.disarm()
            self._watchdog = None

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def _stop_children(self):
        for c in self._children:
            c.stop()
        self._children = []

    def _cleanup(self):
        self._stop_children()
        self._kill()

    # --- clients of the running hibus

    def request(self, method, path, body=None, headers=None, auth=None, timeout=30):
        """One HTTP request on a new connection: (status, headers, body)."""
        return http_request(self.port, method, path, body=body, headers=headers, auth=auth,
                            timeout=timeout, tls=self.tls)

    def cli(self, *args, input=None, timeout=60, env=None):
        """Runs `hibus ARGS` with hibus's environment; fails on a sanitizer report."""
        e = self.env
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        r = subprocess.run([hibus_bin()] + [str(a) for a in args], input=input,
                           capture_output=True, text=True, errors="replace", env=e,
                           timeout=timeout, cwd=self.dir)
        rep = sanitizer_report(r.stderr)
        if rep:
            raise AssertionError("sanitizer error in hibus %s:\n%s" % (" ".join(map(str, args)),
                                                                      r.stderr))
        return r

    def tx_json(self, tx_id):
        r = self.cli("tx", str(tx_id), "-c", self.config_path, "--json")
        if r.returncode != 0:
            raise AssertionError("hibus tx %s --json failed (%d): %s" % (tx_id, r.returncode,
                                                                        r.stderr))
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise AssertionError("hibus tx --json printed no JSON object: %r" % r.stdout[:1000])

    def popen(self, *args):
        """Starts `hibus ARGS` in the background, its stdout read line by line."""
        p = Process([hibus_bin()] + [str(a) for a in args], env=self.env, cwd=self.dir)
        self._children.append(p)
        return p


class Process:
    """A background child whose stdout is read line by line by a thread."""

    def __init__(self, argv, env=None, cwd=None):
        self.argv = argv
        self._err = tempfile.NamedTemporaryFile(prefix="stderr-", suffix=".log",
                                                dir=cwd or work_dir(), delete=False)
        self.stderr_path = self._err.name
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, env=env, cwd=cwd)
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._reader, daemon=True, name="reader")
        self._thread.start()
        _register(self)

    def __repr__(self):
        return "<Process %s pid=%d>" % (" ".join(self.argv[1:3]), self.proc.pid)

    def _reader(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def lines(self):
        with self._cond:
            return list(self._lines)

    def wait_for_line(self, pred, timeout=10.0, start=0):
        """The first line (from index start) for which pred(line) is true, or None on timeout."""
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self._lines):
                    if pred(self._lines[i]):
                        return self._lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(left)

    def stderr_text(self):
        # after stop() the file object is closed (flush raises ValueError), but the
        # file is still there: what a stopped simulator logged stays readable
        try:
            self._err.flush()
        except (OSError, ValueError):
            pass
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM (then SIGKILL); returns the exit code; fails on a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._thread.join(5)
        self.proc.stdout.close()
        _unregister(self)
        if not self._err.closed:
            self._err.close()
        rep = sanitizer_report(self.stderr_text())
        if rep:
            raise AssertionError("sanitizer error in %s:\n%s" % (" ".join(self.argv),
                                                                self.stderr_text()))
        return self.proc.returncode

    def _cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()
        if not self._err.closed:
            self._err.close()


# ---------------------------------------------------------------------------
# unittest glue

class TestCase(unittest.TestCase):
    """Counts outcomes (to keep the work dir of a failed run) and prints the log of
    every hibus that ran during a failed test."""

    maxDiff = None

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors) + len(
            getattr(result, "unexpectedSuccesses", []))
        t0 = time.time()
        out = super().run(result)
        after = len(result.failures) + len(result.errors) + len(
            getattr(result, "unexpectedSuccesses", []))
        _outcome["ran"] += 1
        if after > before:
            _outcome["failed"] += 1
            self._print_logs(t0)
        return out

    @staticmethod
    def _print_logs(t0):
        for h in Hibus.instances:
            if h.started_at is None or (h.stopped_at is not None and h.stopped_at < t0):
                continue
            sys.stderr.write("\n----- log of %s (%s), last lines -----\n%s\n-----\n" % (
                h.name, h.log_path, h.log_tail(80)))

    # assertions shared by the tests

    def assertJsonError(self, resp, status, code=None):
        """resp is a hibus JSON error with this status (and code), whose request_id is
        the X-Request-Id header. Returns the decoded body."""
        self.assertEqual(resp.status, status, "body: %r" % resp.body[:500])
        ctype = resp.headers.get("content-type", "")
        self.assertTrue(ctype.startswith("application/json"),
                        "error content-type is %r" % ctype)
        body = resp.json()
        self.assertIsInstance(body, dict)
        self.assertIsInstance(body.get("error"), str)
        self.assertTrue(body["error"], "empty error message")
        self.assertIsInstance(body.get("code"), str)
        self.assertTrue(body["code"].startswith("HIBUS_E_"), body["code"])
        if code is not None:
            self.assertEqual(body["code"], code)
        self.assertIn("details", body)
        self.assertIsInstance(body["details"], list)
        rid = resp.headers.get("x-request-id")
        self.assertTrue(rid, "no X-Request-Id header")
        self.assertEqual(body.get("request_id"), rid)
        return body


def header_values(headers, name):
    """Values of header name (case-insensitive) in a stored headers object, whose
    values may be strings or lists of strings."""
    out = []
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            out.extend(v if isinstance(v, list) else [v])
    return out


def expect_sanitizer_clean(text, what="hibus"):
    rep = sanitizer_report(text)
    if rep:
        raise AssertionError("sanitizer error in %s:\n%s" % (what, text))


# ---------------------------------------------------------------------------
# HTTP target that can also answer as an OpenHIM mediator

OPENHIM_CONTENT_TYPE = "application/json+openhim"


def openhim_answer(status="Successful", response_status=201, body='{"ok":true}',
                   headers=None, urn="urn:mediator:itest-openhim", orchestrations=None,
                   properties=None):
    """An OpenHIM mediator response object (FORMATS.md section 6)."""
    if orchestrations is None:
        orchestrations = [{
            "name": "itest upstream",
            "request": {"path": "/upstream", "method": "POST", "headers": {},
                        "querystring": "", "body": "{}",
                        "timestamp": "2026-11-03T09:12:00.000Z"},
            "response": {"status": 200, "headers": {}, "body": "{\"stored\":true}",
                         "timestamp": "2026-11-03T09:12:01.000Z"}}]
    if properties is None:
        properties = {"imported": "3", "ignored": "0"}
    d = {"x-mediator-urn": urn,
         "response": {"status": response_status,
                      "headers": dict(headers or {"content-type": "application/json"}),
                      "body": body, "timestamp": "2026-11-03T09:12:01.000Z"},
         "orchestrations": orchestrations, "properties": properties}
    if status is not None:
        d["status"] = status
    return d


class _TargetHandler(_target._Handler):
    """target.py's handler, plus the OpenHIM mediator answers of Target.openhim."""

    def _handle(self):
        parts = urllib.parse.urlsplit(self.path)
        answer = self.server.target._openhim_for(parts.path)
        if answer is None:
            return super()._handle()
        status, obj = answer
        body = self._read_body()
        self.server.target._record(RecordedRequest(self.command, parts.path, parts.query,
                                                   list(self.headers.items()), body,
                                                   time.time()))
        out = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", OPENHIM_CONTENT_TYPE)
            self.send_header("X-Target", "hibus-test-target")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Target(_target.Target):
    """target.py's Target (see there), plus OpenHIM mediator answers: a request whose
    path is a key of .openhim gets (HTTP status, object) as application/json+openhim;
    any other path ending in /openhim gets openhim_answer() with HTTP 200."""

    def __init__(self, *a, tls=None, **kw):
        """tls: (certificate chain file, key file) to answer HTTPS instead of HTTP."""
        super().__init__(*a, **kw)
        self.openhim = {}
        self.tls = tls

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def set_openhim(self, path, obj, http_status=200):
        self.openhim[path] = (http_status, obj)

    def _openhim_for(self, path):
        if path in self.openhim:
            return self.openhim[path]
        if path.endswith("/openhim"):
            return (200, openhim_answer())
        return None

    def start(self):
        self._server = _target._Server((self._host, self._want_port), _TargetHandler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._server.target = self
        self._server.verbose = self._verbose
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="target", daemon=True)
        self._thread.start()
        return self


# ---------------------------------------------------------------------------
# The DHIS2 simulator (tests/dhis2-sim)

def dhis2_sim_bin():
    b = os.environ.get("HIBUS_DHIS2_SIM")
    if not b:
        raise HarnessError("HIBUS_DHIS2_SIM is not set: run under ctest, or export "
                           "HIBUS_DHIS2_SIM=/path/to/dhis2-sim")
    if not os.access(b, os.X_OK):
        raise HarnessError("HIBUS_DHIS2_SIM=%s is not an executable file" % b)
    return b


def dv(de, pe, ou, coc, value, aoc=None, comment=None):
    """One data value as the simulator's GET /admin/values lists it."""
    return {"dataElement": de, "period": pe, "orgUnit": ou, "categoryOptionCombo": coc,
            "attributeOptionCombo": aoc or DHIS2Sim.DEFAULT_AOC, "value": value,
            "comment": comment}


def sort_values(values):
    return sorted(values, key=lambda v: (v.get("dataElement") or "", v.get("period") or "",
                                         v.get("orgUnit") or "",
                                         v.get("categoryOptionCombo") or "",
                                         v.get("attributeOptionCombo") or ""))


class DHIS2Sim:
    """A running tests/dhis2-sim on a free port of 127.0.0.1.

    version: None (the simulator's default, 2.40), "2.40" or "2.37" (bare summaries).
    Admin helpers (no auth): values(), reset(), faults(...), clear_faults(), stats()."""

    USER = "hibus"
    PASSWORD = "Hibus-sim-2026"
    TOKEN = "d2pat_hibusSimulatorToken0000000000000001234567890"

    # the UIDs of tests/dhis2-sim/metadata.json
    DATA_SET = "uRfFkKfeb3Q"
    ORG_UNITS = {"FAC-0042": "cLq0tI1jksz", "FAC-0043": "p88r7fYkDc9", "FAC-0100": "kVncLVPFjTT"}
    DATA_ELEMENTS = {"AMOX250": "PRIVrEScHcE", "ORS1L": "YpYGky8q06j",
                     "ACT-AL20": "rTAGiDO5psX", "ZINC20": "GHgQT4Rrg3i"}
    MEASURES = {"opening_balance": "XIGEYSslBo4", "received": "qgguc6STNsc",
                "consumed": "LelQdVJoKer", "losses": "zsdEdrSZ9r3",
                "adjustments": "LjyzteI7tDK", "stock_on_hand": "PcAgkuk85UK",
                "stockout_days": "YRxjWDCECJW", "requested": "IXRCtTyibWF"}
    DEFAULT_COC = "MSc0sorvCNq"
    DEFAULT_AOC = "pafMuhXXF9W"
    # AMOX250's losses and adjustments by reason: a data element each, whose category
    # combo has one option per reason
    BY_REASON_DATA_ELEMENTS = {"losses": "DeAmoxLoss1", "adjustments": "DeAmoxAdj01"}
    REASONS = {"Expired": "CocExpired1", "Damaged": "CocDamaged1",
               "Found in store": "CocFound001"}

    _counter = 0

    def __init__(self, version=None, metadata=None, name="dhis2-sim", root=None):
        DHIS2Sim._counter += 1
        self.name = "%s%d" % (name, DHIS2Sim._counter)
        self.version = version
        self.metadata = metadata or os.path.join(SOURCE_DIR, "tests", "dhis2-sim",
                                                 "metadata.json")
        self.dir = os.path.join(root or work_dir(), self.name)
        self.port = None
        self.proc = None
        self.exit_code = None
        self._old_stderr = []  # of earlier runs (stop() then start())

    def __repr__(self):
        return "<DHIS2Sim %s port=%s>" % (self.name, self.port)

    def reserve_port(self):
        """Chooses the port now, without starting: routes can point at a simulator that
        is down, and start() brings it up there later."""
        if self.port is None:
            self.port = free_port()
        return self.port

    def restart(self, timeout=15.0):
        """Stops it (when running) and starts a new one on the same port. The
        simulator keeps values in memory only: the new one starts empty."""
        if self.running:
            self.stop()
        return self.start(timeout=timeout)

    def start(self, timeout=15.0):
        """Starts it on a free port, or on its port when it has one (reserve_port(), or
        a previous run: URLs were handed out)."""
        bin_ = dhis2_sim_bin()
        os.makedirs(self.dir, exist_ok=True)
        last = None
        fixed = self.port is not None
        for _ in range(8 if fixed else 3):
            port = self.port if fixed else free_port()
            argv = [bin_, "--port", str(port), "--metadata", self.metadata,
                    "--address", "127.0.0.1"]
            if self.version:
                argv += ["--version", self.version]
            self.proc = Process(argv, env=child_env(), cwd=self.dir)
            line = self.proc.wait_for_line(lambda ln: ln.startswith("dhis2-sim listening on"),
                                           timeout)
            if line is not None:
                m = re.search(r":(\d+)\s*$", line)
                self.port = int(m.group(1)) if m else port
                if self.port != port:
                    raise HarnessError("dhis2-sim said %r, asked for port %d" % (line, port))
                return self
            rc = self.proc.proc.poll()
            err = self.proc.stderr_text()
            out = "\n".join(self.proc.lines)
            try:
                self.proc.stop()
            except AssertionError as e:
                raise HarnessError(str(e))
            self.proc = None
            last = "%s\n%s\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(argv), "it exited with %d" % rc if rc is not None else "still running",
                out, err)
            if "in use" in (out + err).lower():
                if fixed:
                    time.sleep(0.5)
                continue
            break
        raise HarnessError("dhis2-sim did not say it listens (waited up to %.0fs):\n%s"
                           % (timeout, last))

    _IMPORT_LINE = re.compile(r"^dhis2-sim: import (\w+): imported (\d+), updated (\d+), "
                              r"ignored (\d+), deleted (\d+)$")

    def import_log(self):
        """The imports the simulator carried out (it logs one line per dataValueSets
        import it applied, none for a faulted or dropped one), over every run of this
        object (restarts included), oldest first: dicts status, imported, updated,
        ignored, deleted."""
        out = []
        for text in self._old_stderr + [self.stderr_text()]:
            for ln in text.splitlines():
                m = self._IMPORT_LINE.match(ln)
                if m:
                    out.append({"status": m.group(1), "imported": int(m.group(2)),
                                "updated": int(m.group(3)), "ignored": int(m.group(4)),
                                "deleted": int(m.group(5))})
        return out

    def stop(self):
        """SIGTERM; fails on a sanitizer report in its stderr."""
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        try:
            self.exit_code = p.stop()
            self._old_stderr.append(p.stderr_text())
        except AssertionError:
            _outcome["failed"] += 1
            raise

    def _cleanup(self):
        if self.proc is not None:
            self.proc._cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def running(self):
        return self.proc is not None and self.proc.proc.poll() is None

    def stderr_text(self):
        return self.proc.stderr_text() if self.proc else ""

    # --- DHIS2's own API, as a client would use it

    def request(self, method, path, body=None, headers=None, auth=None, timeout=30):
        return http_request(self.port, method, path, body=body, headers=headers, auth=auth,
                            timeout=timeout)

    # --- the admin API (no auth)

    def _admin(self, method, path, body=None):
        r = self.request(method, path, body=body, timeout=10)
        if r.status // 100 != 2:
            raise HarnessError("dhis2-sim %s %s answered %d: %r" % (method, path, r.status,
                                                                     r.body[:300]))
        return r

    def values(self):
        """Every stored data value (list of dicts, sorted by harness.sort_values)."""
        v = self._admin("GET", "/admin/values").json()
        if not isinstance(v, list):
            raise AssertionError("dhis2-sim /admin/values is not a JSON array: %r" % (v,))
        return sort_values(v)

    def reset(self):
        """Forgets every stored value and fault (and the stats)."""
        self._admin("POST", "/admin/reset", body={})

    def faults(self, **kw):
        """POST /admin/faults with kw: fail_status+fail_count, stall_seconds+stall_count,
        drop_count, or clear=True."""
        self._admin("POST", "/admin/faults", body=kw)

    def clear_faults(self):
        self.faults(clear=True)

    def stats(self):
        return self._admin("GET", "/admin/stats").json()


def sim_route(sim, name="dhis2", auth="basic", primary=True, timeout="10s", **extra):
    """A dhis2 route to sim: auth "basic", "token" or None."""
    r = {"name": name, "mediator": "dhis2", "url": sim.url}
    if auth == "basic":
        r["auth"] = {"basic": {"username": DHIS2Sim.USER, "password": DHIS2Sim.PASSWORD}}
    elif auth == "token":
        r["auth"] = {"token": DHIS2Sim.TOKEN}
    if primary:
        r["primary"] = True
    r["timeout"] = timeout
    r.update(extra)
    return r


def mapping_doc(items=None, org_units=None, org_units_csv=None, measures=None,
                data_set=DHIS2Sim.DATA_SET, period_type="Monthly"):
    """A mapping file (as a dict for to_yaml) onto the simulator's metadata."""
    d = {}
    if data_set:
        d["data_set"] = data_set
    if period_type:
        d["period_type"] = period_type
    d["org_units"] = dict(DHIS2Sim.ORG_UNITS if org_units is None else org_units)
    if org_units_csv:
        d["org_units_csv"] = org_units_csv
    d["measures"] = dict(DHIS2Sim.MEASURES if measures is None else measures)
    # the simulator's stock data elements are INTEGER: an ADX annotation on them is
    # dropped, as DHIS2 drops it (the mapping must say, see docs/configuration.md)
    d["items"] = dict({k: {"data_element": v, "value_type": "INTEGER"}
                       for k, v in DHIS2Sim.DATA_ELEMENTS.items()}
                      if items is None else items)
    return d


def stock_report(facility, period, item="AMOX250", stock_on_hand=10):
    """A one-line lmis-report payload (bytes)."""
    return json.dumps({"facility": facility, "period": period,
                       "lines": [{"commodity": item, "stock_on_hand": stock_on_hand}]}).encode()


def sim_channel(name, path, sim, mapping="m", **extra):
    """A sync channel: lmis-report, mapping `mapping`, dataValueSets to the simulator."""
    d = {"name": name, "priority": 10,
         "match": {"path": path, "methods": ["POST"], "content_types": ["application/json"]},
         "allow": {"roles": ["lmis"]},
         "transform": {"reader": "lmis-report", "mapping": mapping,
                       "writer": "dhis2-datavalueset"},
         "routes": [sim_route(sim)]}
    d.update(extra)
    return d


def pipeline_data(name, mode="rb"):
    """The bytes (or text) of tests/data/pipeline/NAME."""
    with open(os.path.join(HERE, "data", "pipeline", name), mode) as f:
        return f.read()


def _stock_values(ou, pe, table):
    """table: [(item code, {measure: int})] -> the simulator's values for them."""
    out = []
    for item, measures in table:
        for m, v in measures.items():
            out.append(dv(DHIS2Sim.DATA_ELEMENTS[item], pe, ou, DHIS2Sim.MEASURES[m], str(v)))
    return sort_values(out)


def _row(*v, names=("opening_balance", "received", "consumed", "losses", "adjustments",
                    "stock_on_hand", "stockout_days", "requested")):
    return {n: x for n, x in zip(names, v) if x is not None}


# What the simulator must hold after each sample of tests/data/pipeline went through
# the test mapping (harness.mapping_doc()), written out by hand from the samples.
PIPELINE_SAMPLES = {
    "lmis-report.json": {
        "reader": "lmis-report", "content_type": "application/json",
        "values": _stock_values("cLq0tI1jksz", "202610", [
            ("AMOX250", _row(1200, 500, 640, 10, 0, 1050, 0, 700)),
            ("ORS1L", _row(300, 0, 180, 0, -5, 115, 0, 400)),
            ("ACT-AL20", _row(90, 200, 290, 0, 0, 0, 6, 600))])},
    "openlmis-requisition.json": {
        # no losses column: totalLossesAndAdjustments is the adjustments measure;
        # the skipped line item (ORS1L) carries no data
        "reader": "openlmis-requisition", "content_type": "application/json",
        "values": _stock_values("kVncLVPFjTT", "202609", [
            ("AMOX250", _row(800, 300, 420, None, -30, 650, 0, 500)),
            ("ZINC20", _row(150, 0, 60, None, 0, 90, 2, 100))])},
    "dhis2-datavalueset.json": {
        "reader": "dhis2-json", "content_type": "application/json",
        "values": sort_values([
            dv("PRIVrEScHcE", "202608", "p88r7fYkDc9", "PcAgkuk85UK", "75"),
            dv("PRIVrEScHcE", "202608", "p88r7fYkDc9", "LelQdVJoKer", "40"),
            dv("YpYGky8q06j", "202608", "p88r7fYkDc9", "PcAgkuk85UK", "12",
               comment="counted twice"),
            dv("GHgQT4Rrg3i", "202608", "p88r7fYkDc9", "YRxjWDCECJW", "3")])},
    "adx.xml": {
        "reader": "adx", "content_type": "application/adx+xml",
        "values": sort_values([
            dv("rTAGiDO5psX", "202607", "cLq0tI1jksz", "PcAgkuk85UK", "44"),
            dv("rTAGiDO5psX", "202607", "cLq0tI1jksz", "qgguc6STNsc", "100"),
            dv("YpYGky8q06j", "202607", "cLq0tI1jksz", "LelQdVJoKer", "18")])},
    "adx-multi.xml": {
        # two groups (org unit and period per value); the annotation (markup, non-ASCII)
        # is on an INTEGER data element, so it is dropped as DHIS2's ADX import drops it
        "reader": "adx", "content_type": "application/adx+xml",
        "values": sort_values([
            dv("PRIVrEScHcE", "202607", "cLq0tI1jksz", "PcAgkuk85UK", "310"),
            dv("PRIVrEScHcE", "202607", "cLq0tI1jksz", "LelQdVJoKer", "95"),
            dv("GHgQT4Rrg3i", "202606", "p88r7fYkDc9", "YRxjWDCECJW", "4")])},
}


def normalize_values(values):
    """The simulator's values with exactly the keys of dv() (a missing comment is None),
    sorted; raises AssertionError on unexpected keys."""
    keys = {"dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo",
            "value", "comment"}
    out = []
    for v in values:
        extra = set(v) - keys
        if extra:
            raise AssertionError("unexpected keys %s in stored value %r" % (sorted(extra), v))
        out.append({k: v.get(k) for k in keys})
    return sort_values(out)


# ---------------------------------------------------------------------------
# Fault tests (tests/integration/test_faults_*.py, docs/reliability.md): LMIS
# reports delivered asynchronously to the DHIS2 simulator while something breaks,
# and the books that must balance afterwards.

# hibus.yaml's delivery: for the fault tests. The lease (3s) is at least the sum of
# the async channel's route timeouts (one route, 1s).
FAULT_DELIVERY = {"workers": 4, "lease": "3s", "poll": "500ms", "max_attempts": 50,
                  "max_age": "1h", "backoff": {"initial": "100ms", "max": "1s"}, "drain": "5s"}
FAULT_PASSWORD = "lmis-faults-secret"
FAULT_AUTH = ("lmis-national", FAULT_PASSWORD)
FAULT_FACILITIES = ("FAC-0042", "FAC-0043", "FAC-0100")
FAULT_ITEMS = ("AMOX250", "ORS1L")


def fault_channel(name, path, sim, timeout="1s", retry=None):
    """An async channel: lmis-report -> the simulator's metadata (mapping "faults") ->
    one dhis2 route to sim with a short timeout."""
    d = {"name": name, "priority": 10,
         "match": {"path": path, "methods": ["POST"], "content_types": ["application/json"]},
         "allow": {"roles": ["lmis"]}, "mode": "async",
         "transform": {"reader": "lmis-report", "mapping": "faults",
                       "quality": ["non_negative"], "writer": "dhis2-datavalueset"},
         "unmapped": "reject", "routes": [sim_route(sim, timeout=timeout)]}
    if retry:
        d["retry"] = dict(retry)
    return d


def fault_hibus(pg, channels, name="hibus", delivery=None):
    """A Hibus (not started) with FAULT_DELIVERY (updated with delivery) and the
    mapping "faults" (every facility, item and measure of the simulator)."""
    d = json.loads(json.dumps(FAULT_DELIVERY))
    d.update(delivery or {})
    return Hibus(pg.url, clients=[client(FAULT_AUTH[0], ["lmis"], FAULT_PASSWORD)],
                 channels=channels, name=name,
                 settings={"mappings": "mappings", "delivery": d},
                 files={"mappings/faults.yaml": mapping_doc()})


def fault_reports(n, first_year, tag, facilities=FAULT_FACILITIES):
    """n lmis-report documents, each for its own (facility, month): facilities in turn,
    months from first_year-01 on, so that no two share a DHIS2 value key. Every value
    differs from report to report (and balances)."""
    out = []
    for i in range(n):
        fac = facilities[i % len(facilities)]
        k = i // len(facilities)
        year, month = first_year + k // 12, k % 12 + 1
        if (year, month) >= time.gmtime()[:2]:
            # DHIS2 (and the simulator) ignore values for periods not yet started (E7641)
            raise HarnessError("fault_reports: %d-%02d is not in the past" % (year, month))
        lines = []
        for j, item in enumerate(FAULT_ITEMS):
            ob, rec, con, los, adj = 1000 + 7 * i + j, 100 + i, 300 + 3 * i + j, i % 5, i % 3
            lines.append({"commodity": item, "opening_balance": ob, "received": rec,
                          "consumed": con, "losses": los, "adjustments": adj,
                          "stock_on_hand": ob + rec - con - los + adj,
                          "stockout_days": (i + j) % 4, "requested": 500 + i + j})
        out.append({"report_id": "RR-%s-%s-%d-%02d" % (tag, fac, year, month),
                    "facility": fac, "program": "essential-medicines",
                    "period": "%d-%02d" % (year, month),
                    "submitted_at": "%d-%02d-28T09:00:00Z" % (year, month),
                    "lines": lines})
    return out


def report_values(rep):
    """What the simulator must hold for one report of fault_reports()."""
    ou = DHIS2Sim.ORG_UNITS[rep["facility"]]
    pe = rep["period"].replace("-", "")
    out = []
    for line in rep["lines"]:
        for m, coc in DHIS2Sim.MEASURES.items():
            out.append(dv(DHIS2Sim.DATA_ELEMENTS[line["commodity"]], pe, ou, coc,
                          str(line[m])))
    return sort_values(out)


def value_key(v):
    return (v["dataElement"], v["period"], v["orgUnit"], v["categoryOptionCombo"],
            v["attributeOptionCombo"])


Posted = collections.namedtuple("Posted", "report request_id status tx resp")


class FaultTestCase(TestCase):
    """Posting reports to async channels and checking, once delivery settled, that
    nothing was lost: the simulator's values, the transaction log, and the count of
    imports the simulator applied more than once (duplicates)."""

    PG = None  # set by the module

    def post_report(self, hb, path, rep, request_id=None, timeout=30):
        rid = request_id or "itest-%s" % rep["report_id"]
        r = hb.request("POST", path, body=rep, auth=FAULT_AUTH, timeout=timeout,
                       headers={"Content-Type": "application/json", "X-Request-Id": rid})
        tx = None
        if r.status == 202:
            self.assertIn("x-hibus-transaction", r.headers, r.headers)
            tx = int(r.headers["x-hibus-transaction"])
            body = r.json()
            self.assertEqual((body.get("id"), body.get("status")), (tx, "queued"), body)
        return Posted(rep, rid, r.status, tx, r)

    def post_all(self, hb, path, reports):
        """Posts each report (one after the other); asserts 202 for each."""
        out = []
        for rep in reports:
            p = self.post_report(hb, path, rep)
            self.assertEqual(p.status, 202, "%s: %r" % (p.request_id, p.resp.body[:500]))
            out.append(p)
        return out

    def unfinished(self, txs):
        return self.PG.count("transactions", "id IN (%s) AND status IN ('queued', 'processing')"
                             % ",".join(str(t) for t in txs))

    def wait_settled(self, txs, timeout=60.0, what="delivery to settle"):
        """Until none of txs is queued or processing (bounded)."""
        wait_until(lambda: self.unfinished(txs) == 0, timeout=timeout, interval=0.25,
                   what="%s (%d transactions)" % (what, len(txs)))

    def wait_imports(self, sim, n, timeout=30.0):
        """Until the simulator counted at least n imports."""
        wait_until(lambda: sim.stats()["imports"] >= n, timeout=timeout, interval=0.05,
                   what="%d imports at the simulator" % n)

    def begin(self, sim):
        """Empties the simulator (values, faults, counters) and marks its import log:
        account() counts the imports from here."""
        if sim.running:
            sim.reset()
        self._import_mark = (sim, len(sim.import_log()))

    def applied_imports(self, sim):
        mark = self._import_mark[1] if getattr(self, "_import_mark", (None,))[0] is sim else 0
        return sim.import_log()[mark:]

    def account(self, fault, posted, sim, faults, unapplied, status="successful",
                expect_values=None, exact_duplicates=None, cancelled=()):
        """The books after a fault, for the 202s in posted:

          (1) the simulator holds exactly the values of the reports (expect_values, when
              given, instead): nothing lost, nothing extra;
          (2) one transactions row per 202, each ending `status`, with its attempts
              numbered 1..n, the last of them successful and the only successful one;
          (3) duplicates: imports the simulator applied beyond one per report.

        Duplicates are counted at the simulator, which logs one line per import it
        applied ("import SUCCESS: imported 16, updated 0, ..."; a first delivery of a
        report imports its values, a second one updates them with the same values), and
        none for an import it failed on purpose or dropped. An import hibus gave up on
        (a stall beyond the route timeout) or whose sender died is still applied once
        the stall ends: hibus cannot know, the simulator's log does. So
        duplicates = applied imports - reports.

        Cross-check: every import that arrived (stats.imports) was either applied or
        faulted without storing anything (unapplied: the failed and dropped imports,
        stats.faults when only those were injected; a stall alone stores). This waits
        (bounded) until applied == imports - unapplied, so that a stalled import still
        asleep in the simulator is counted (and cannot land in the next test).

        cancelled: more 202s, whose delivery an operator cancelled on purpose (hibus
        rerun --cancel); they count as sent, and are neither delivered nor lost (the
        caller checks them).

        Prints one line `RELIABILITY fault=... sent=... faults=... delivered=...
        duplicates=... lost=...` (plus imports, applied, tries logged by hibus, failed
        tries, rounds) before asserting, so the figures show even when an assertion
        fails. Returns the figures as a dict."""
        accepted = [p for p in posted if p.status == 202]
        txs = [p.tx for p in accepted]
        settled = True
        try:
            wait_until(lambda: len(self.applied_imports(sim)) >= sim.stats()["imports"] - unapplied,
                       timeout=20, interval=0.1, what="the simulator to finish every import")
        except AssertionError:
            settled = False
        applied = self.applied_imports(sim)
        stats = sim.stats()
        stored = normalize_values(sim.values())
        have = {value_key(v): v for v in stored}
        want_all = expect_values if expect_values is not None else sort_values(
            [v for p in accepted for v in report_values(p.report)])
        want_keys = {value_key(v) for v in want_all}
        if expect_values is None:
            lost = [p.request_id for p in accepted
                    if any(have.get(value_key(v)) != v for v in report_values(p.report))]
        else:  # reports overwrite each other: count the values that are not as expected
            lost = [v for v in want_all if have.get(value_key(v)) != v]
        extra = [v for v in stored if value_key(v) not in want_keys]
        duplicates = len(applied) - len(accepted)
        ids = ",".join(str(t) for t in txs) or "0"
        rows = {r["id"]: r for r in self.PG.rows(
            "SELECT id, request_id, status, rounds, error, rerun_at FROM transactions"
            " WHERE id IN (%s)" % ids)}
        atts = self.PG.rows("SELECT transaction_id, route, attempt, status_code, outcome, error"
                            " FROM attempts WHERE transaction_id IN (%s) ORDER BY id" % ids)
        not_ok = [r for r in rows.values() if r["status"] != status]
        figures = collections.OrderedDict([
            ("fault", fault), ("sent", len(accepted) + len(cancelled)), ("faults", faults),
            ("delivered", len(accepted) - len(lost)), ("duplicates", duplicates),
            ("lost", len(lost))] + ([("cancelled", len(cancelled))] if cancelled else []) + [
            ("imports", stats["imports"]), ("applied", len(applied)),
            ("tries", len(atts)),
            ("failed_tries", sum(1 for a in atts if a["outcome"] != "successful")),
            ("rounds", sum(r["rounds"] for r in rows.values()))])
        print("\nRELIABILITY " + " ".join("%s=%s" % kv for kv in figures.items()),
              flush=True)

        # (1) the simulator
        self.assertEqual(lost, [], "reports acknowledged (202) whose values are not all at"
                                   " the simulator")
        self.assertEqual(extra, [], "values at the simulator that no accepted report has")
        self.assertEqual(stored, sort_values(want_all))
        # (2) the transaction log
        self.assertEqual(sorted(rows), sorted(txs), "a 202 without its transactions row")
        for p in accepted:
            self.assertEqual(rows[p.tx]["request_id"], p.request_id)
        self.assertEqual(not_ok, [], "transactions that did not end %s" % status)
        by_tx = collections.defaultdict(list)
        for a in atts:
            by_tx[a["transaction_id"]].append(a)
        for tx in txs:
            a = by_tx.get(tx, [])
            self.assertTrue(a, "transaction %d has no attempts" % tx)
            self.assertEqual([x["attempt"] for x in a], list(range(1, len(a) + 1)),
                             "attempt numbers of transaction %d: %r" % (tx, a))
            self.assertGreaterEqual(rows[tx]["rounds"], 1, rows[tx])
            if status == "successful":
                self.assertEqual((a[-1]["status_code"], a[-1]["outcome"]), (200, "successful"),
                                 "last attempt of transaction %d: %r" % (tx, a))
                self.assertEqual(sum(1 for x in a if x["outcome"] == "successful"), 1,
                                 "transaction %d: more than one successful attempt logged: %r"
                                 % (tx, a))
        # (3) duplicates
        self.assertTrue(settled, "imports that arrived at the simulator were neither applied"
                                 " nor faulted: %r, %d applied, %d unapplied"
                                 % (stats, len(applied), unapplied))
        self.assertEqual(len(applied), stats["imports"] - unapplied, stats)
        # Every import went in cleanly. A repeated delivery (a retry after a lost answer)
        # re-sends values DHIS2 already has: 2.38.6+ counts them ignored, without a
        # conflict, and stores nothing new; a first delivery ignores nothing.
        self.assertTrue(all(a["status"] == "SUCCESS" and (a["ignored"] == 0 or a["imported"] == 0)
                            for a in applied),
                        [a for a in applied if a["status"] != "SUCCESS" or
                         (a["ignored"] and a["imported"])])
        self.assertGreaterEqual(duplicates, 0, "fewer applied imports than reports")
        if exact_duplicates is not None:
            self.assertEqual(duplicates, exact_duplicates, "duplicates")
        return figures
