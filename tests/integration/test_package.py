"""The Debian package, end to end on this machine: packaging/build-deb builds it, dpkg
installs it (system user, /etc/hibus readable by hibus only, the unit, man pages),
systemd-analyze accepts the unit and rates its hardening, the service's own commands
run as its user against a private PostgreSQL and take a report, a reinstall (an
upgrade) migrates, and a purge removes it again. Changes the machine while it runs:
root only, and it leaves nothing behind."""

import gzip
import os
import re
import signal
import subprocess
import time
import unittest

import harness

UNIT = "/lib/systemd/system/hibus.service"
PASSWORD = "pkg-itest-secret"

PG = SIM = None
DEB = None


def run(*args, check=True, timeout=300, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                         r.stderr))
    return r


def installed():
    r = run("dpkg-query", "-W", "-f=${Status}", "hibus", check=False)
    return r.returncode == 0 and "installed" in r.stdout


def setUpModule():
    global PG, SIM, DEB
    if os.geteuid() != 0:
        raise unittest.SkipTest("installs a package: run as root (scripts/test does)")
    if installed():
        raise AssertionError("a hibus package is installed already; this test would replace "
                             "and then purge it: remove it first (dpkg --purge hibus)")
    out = run(os.path.join(harness.SOURCE_DIR, "packaging", "build-deb"), timeout=1200,
              cwd=harness.SOURCE_DIR).stdout.split()
    DEB = os.path.join(harness.SOURCE_DIR, out[-1])
    PG = harness.PgCluster().start()
    SIM = harness.DHIS2Sim().start()


def tearDownModule():
    if DEB is not None and installed():
        run("dpkg", "--purge", "hibus", check=False)
    harness.stop_all(SIM, PG)


class PackageTest(harness.TestCase):

    def test_install_run_upgrade_purge(self):
        info = run("dpkg-deb", "-I", DEB).stdout
        self.assertRegex(info, r"Depends:.*libmicrohttpd12.*libpq5")
        files = run("dpkg-deb", "-c", DEB).stdout
        for f in ("./usr/bin/hibus", "." + UNIT, "./etc/hibus/hibus.yaml",
                  "./usr/share/man/man8/hibus.8.gz", "./usr/share/man/man5/hibus.yaml.5.gz",
                  "./usr/share/doc/hibus/admin-guide.md.gz",
                  "./usr/share/hibus/prometheus/hibus-alerts.yml"):
            self.assertIn(f, files)

        # as an administrator would: apt brings what the package depends on (adduser)
        run("apt-get", "install", "-y", "-qq", DEB, timeout=600,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        try:
            self.check_installed()
            self.run_service()
            # an upgrade (the same version again): postinst migrates the configured database
            r = run("dpkg", "-i", DEB)
            self.assertNotIn("did not apply", r.stderr)
        finally:
            run("dpkg", "--purge", "hibus")
        self.assertFalse(os.path.exists("/usr/bin/hibus"))
        self.assertFalse(os.path.exists("/etc/hibus"))
        self.assertFalse(os.path.exists(UNIT))
        self.assertNotEqual(run("getent", "passwd", "hibus", check=False).returncode, 0)

    def check_installed(self):
        self.assertEqual(run("/usr/bin/hibus", "--version").stdout.split()[0], "hibus")
        pw = run("getent", "passwd", "hibus").stdout.split(":")
        self.assertEqual(pw[6].strip(), "/usr/sbin/nologin")
        st = os.stat("/etc/hibus")
        self.assertEqual((st.st_uid, oct(st.st_mode & 0o777)), (0, "0o750"))
        self.assertEqual(os.stat("/etc/hibus/hibus.yaml").st_mode & 0o777, 0o640)
        self.assertEqual(os.stat("/etc/hibus/environment").st_mode & 0o777, 0o640)
        # the conffiles dpkg protects across upgrades
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "hibus").stdout
        self.assertIn("/etc/hibus/hibus.yaml", conffiles)
        # the unit: valid, and hardened (systemd's own rating, 0 safe .. 10 exposed)
        r = run("systemd-analyze", "verify", UNIT, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("systemd-analyze", "security", "--offline=true", UNIT, check=False)
        m = re.search(r"Overall exposure level for hibus.service: ([\d.]+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)
        # the man pages, hibus.yaml(5) made from the key table
        with gzip.open("/usr/share/man/man5/hibus.yaml.5.gz", "rt") as f:
            page = f.read()
        for key in ("listen.port", "database.url", "admin.port", "alerts.webhook",
                    "delivery.max_age"):
            self.assertIn(key, page)
        with gzip.open("/usr/share/man/man8/hibus.8.gz", "rt") as f:
            self.assertIn(".TH HIBUS 8", f.read())

    def unit_commands(self, key):
        with open(UNIT) as f:
            return [ln.split("=", 1)[1].split() for ln in f if ln.startswith(key + "=")]

    def run_service(self):
        """Runs the unit's own ExecStartPre and ExecStart as its user, with its
        EnvironmentFile (this machine has no systemd running)."""
        port, admin = harness.free_port(), harness.free_port()
        with open("/etc/hibus/environment", "a") as f:
            f.write("HIBUS_DATABASE_URL=%s\n" % PG.url)
        with open("/etc/hibus/hibus.yaml") as f:
            conf = f.read()
        conf = conf.replace("port: 5001", "port: %d" % port).replace("port: 5002",
                                                                     "port: %d" % admin)
        with open("/etc/hibus/hibus.yaml", "w") as f:
            f.write(conf)
        with open("/etc/hibus/clients.yaml", "w") as f:
            f.write(harness.to_yaml({"roles": ["lmis"], "clients": [
                harness.client("lmis-national", ["lmis"], PASSWORD)]}))
        # a stock report, mapped and sent to DHIS2 (the simulator)
        with open("/etc/hibus/mappings/national.yaml", "w") as f:
            f.write(harness.to_yaml(harness.mapping_doc()))
        with open("/etc/hibus/channels/lmis-stock.yaml", "w") as f:
            f.write(harness.to_yaml({
                "name": "lmis-stock",
                "match": {"path": "/lmis/stock-reports", "methods": ["POST"],
                          "content_types": ["application/json"]},
                "allow": {"roles": ["lmis"]},
                "transform": {"reader": "lmis-report", "mapping": "national",
                              "writer": "dhis2-datavalueset"},
                "routes": [harness.sim_route(SIM)]}))
        env = {"PATH": "/usr/bin:/bin"}
        with open("/etc/hibus/environment") as f:
            for ln in f:
                if "=" in ln and not ln.lstrip().startswith("#"):
                    k, v = ln.strip().split("=", 1)
                    env[k] = v
        as_user = ["runuser", "-u", "hibus", "--", "env"] + ["%s=%s" % kv for kv in env.items()]
        for cmd in self.unit_commands("ExecStartPre"):
            run(*(as_user + cmd))
        (start,) = self.unit_commands("ExecStart")
        proc = subprocess.Popen(as_user + start, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            harness.wait_until(lambda: self.ready(port), timeout=20,
                               what="the packaged hibus to answer /ready")
            report = harness.pipeline_data("lmis-report.json")
            r = harness.http_request(port, "POST", "/lmis/stock-reports", body=report,
                                     auth=("lmis-national", PASSWORD),
                                     headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.body)
            tx = int(r.headers["x-hibus-transaction"])
            self.assertEqual(PG.scalar("SELECT status FROM transactions WHERE id = %d" % tx),
                             "successful")
            self.assertGreater(len(SIM.values()), 0)  # DHIS2 holds the report's values
            # run by the hibus user, reading /etc/hibus it owns no write to
            main = self.child_pid(proc)
            with open("/proc/%d/status" % main) as f:
                uid = next(ln.split()[1] for ln in f if ln.startswith("Uid:"))
            self.assertEqual(uid, run("id", "-u", "hibus").stdout.strip())
        finally:
            # as systemd stops it: SIGTERM to the service's main process
            os.kill(self.child_pid(proc), signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn("stopped", out)

    @staticmethod
    def ready(port):
        try:
            return harness.http_request(port, "GET", "/ready", timeout=2).status == 200
        except OSError:
            return False

    @staticmethod
    def child_pid(proc):
        """runuser's child: the hibus process itself (from /proc: no procps needed)."""
        for _ in range(50):
            for tid in os.listdir("/proc/%d/task" % proc.pid):
                with open("/proc/%d/task/%s/children" % (proc.pid, tid)) as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            time.sleep(0.1)
        return proc.pid


if __name__ == "__main__":
    unittest.main(verbosity=2)
