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
                 host="127.0.0.1"):
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
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
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

    def start(self, timeout=20.0):
        bin_ = hibus_bin()
        _register(self)
        last = None
        for _ in range(3):
            self.port = free_port()
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
                    continue  # another process took our port: try another
                raise
        raise last

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
                            timeout=timeout)

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
        try:
            self._err.flush()
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, ValueError):
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

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.openhim = {}

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

    def __repr__(self):
        return "<DHIS2Sim %s port=%s>" % (self.name, self.port)

    def start(self, timeout=15.0):
        bin_ = dhis2_sim_bin()
        os.makedirs(self.dir, exist_ok=True)
        last = None
        for _ in range(3):
            port = free_port()
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
                continue
            break
        raise HarnessError("dhis2-sim did not say it listens (waited up to %.0fs):\n%s"
                           % (timeout, last))

    def stop(self):
        """SIGTERM; fails on a sanitizer report in its stderr."""
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        try:
            self.exit_code = p.stop()
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
    d["items"] = dict({k: {"data_element": v} for k, v in DHIS2Sim.DATA_ELEMENTS.items()}
                      if items is None else items)
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
        # two groups (org unit and period per value), a comment with markup and non-ASCII
        "reader": "adx", "content_type": "application/adx+xml",
        "values": sort_values([
            dv("PRIVrEScHcE", "202607", "cLq0tI1jksz", "PcAgkuk85UK", "310",
               comment="recount & <adjusted> \u2013 r\u00e9ception \"partielle\""),
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
