"""bench/aggregate: stock events in, monthly figures out (see that script).

A year of daily stock events for FACILITIES facilities and 4 commodities (a physical
count on the first of each month, a receipt every 7th day, an issue on the other
days): 1,460 events per facility a year. Three figures:

  intake    events stored per second: async POSTs of 1,000 events (4 clients at a
            time) until every batch's transaction has stored its events, beside
            pgbench inserting the same number of rows into a copy of stock_events
            (same columns, same unique key and index), 1,000 rows a transaction, 2
            clients: the rate of the durable writes alone. Five interleaved pairs,
            each on a fifth of the facilities, and the median of each side.
  emission  every closed month of every facility (12 x FACILITIES periods) derived
            and imported by the DHIS2 simulator (POST /api/dataValueSets), from the
            start of a process with aggregate.every 1s until every period is sent;
            the periods per second and the peak RSS of the process.
  show      `hibus aggregate show` of one facility's last month (every commodity, a
            year of history): the median of 7 whole commands, beside `psql -c
            'SELECT 1'` in the same run.
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import harness  # noqa: E402

FACILITIES = int(sys.argv[1]) if len(sys.argv) > 1 else 150
COMMODITIES = ["AMOX250", "ORS1L", "ACT-AL20", "ZINC20"]
BATCH = 1000
PASSWORD = "bench-aggregate-secret"
AUTH = ("lmis-bench", PASSWORD)


def months_back(n):
    """The first day of the month n months before this one."""
    d = datetime.date.today().replace(day=1)
    for _ in range(n):
        d = (d - datetime.timedelta(days=1)).replace(day=1)
    return d


def facility_events(f):
    """One facility's year (the twelve months before this one), in date order."""
    start, end = months_back(12), months_back(0)
    out = []
    n = 0
    day = start
    while day < end:
        for c in COMMODITIES:
            n += 1
            if day.day == 1:
                kind, q = "count", 400
            elif day.toordinal() % 7 == 0:
                kind, q = "receipt", 120
            else:
                kind, q = "issue", 13
            out.append({"id": "B%05d-%07d" % (f, n), "facility": "FAC-B%05d" % f,
                        "commodity": c, "date": day.isoformat(), "kind": kind, "quantity": q})
        day += datetime.timedelta(days=1)
    return out


def batches(facilities):
    evs = [e for f in facilities for e in facility_events(f)]
    return [evs[i:i + BATCH] for i in range(0, len(evs), BATCH)], len(evs)


def rss_peak_mb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def post_batches(hb, docs):
    """Posts docs with 4 threads; returns the transaction ids."""
    txs, errors, lock = [], [], threading.Lock()
    queue = list(docs)

    def run():
        while True:
            with lock:
                if not queue:
                    return
                doc = queue.pop()
            r = hb.request("POST", "/bench/events", body=json.dumps({"events": doc}).encode(),
                           auth=AUTH, headers={"Content-Type": "application/json"}, timeout=60)
            with lock:
                if r.status != 202:
                    errors.append((r.status, r.body[:300]))
                else:
                    txs.append(int(r.headers["x-hibus-transaction"]))
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("a batch was refused: %r" % (errors[:3],))
    return txs


def main():
    pg = harness.PgCluster().start()
    sim = harness.DHIS2Sim().start()
    # the simulator's three org units in turn (DHIS2 keeps the last value of each)
    ous = sorted(harness.DHIS2Sim.ORG_UNITS.values())
    mapping = harness.mapping_doc(
        org_units={"FAC-B%05d" % f: ous[f % len(ous)] for f in range(FACILITIES)})
    channel = {"name": "bench-events", "priority": 10, "mode": "async",
               "match": {"path": "/bench/events", "methods": ["POST"]},
               "allow": {"roles": ["lmis"]},
               "transform": {"reader": "stock-event", "mapping": "bench",
                             "quality": ["balance"]},
               "aggregate": {"close_after": "1s"},
               "routes": [harness.sim_route(sim)]}
    hb = harness.Hibus(pg.url, clients=[harness.client("lmis-bench", ["lmis"], PASSWORD)],
                       channels=[channel],
                       settings={"mappings": "mappings", "log": {"level": "warn"},
                                 "aggregate": {"every": "1h"}},  # no emission while loading
                       files={"mappings/bench.yaml": mapping})
    hb.start()
    time.sleep(2)  # past the aggregate thread's first look (1 s after start): no emission
    pg.psql("CREATE TABLE bench_events (LIKE stock_events INCLUDING ALL)")
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write("\\set b random(1, 1000000000)\n"
                 "INSERT INTO bench_events (channel, source_id, facility, commodity,"
                 " occurred_on, kind, quantity, tx_id) SELECT 'bench', :b || '-' || g,"
                 " 'FAC-B' || (g %% 150), 'AMOX250', current_date - (g %% 365), 'issue', 13, 0"
                 " FROM generate_series(1, %d) g;\n" % BATCH)
    script.close()
    os.chmod(script.name, 0o644)

    parts = [list(range(FACILITIES))[k::5] for k in range(5)]
    rates = []
    total_events = 0
    print("intake: events stored per second (hibus: async POSTs of %d events; pgbench: "
          "INSERTs of %d rows into a copy of stock_events)" % (BATCH, BATCH))
    for k, facs in enumerate(parts):
        docs, n = batches(facs)
        total_events += n
        t0 = time.monotonic()
        txs = post_batches(hb, docs)
        posted_s = time.monotonic() - t0
        ids = ",".join(map(str, txs))
        harness.wait_until(lambda: pg.count("transactions", "id IN (%s) AND status IN "
                                            "('queued', 'processing')" % ids) == 0,
                           timeout=900, interval=0.1, what="the batches stored")
        hibus_s = time.monotonic() - t0
        bad = pg.count("transactions", "id IN (%s) AND status <> 'successful'" % ids)
        if bad:
            raise SystemExit("%d batches did not end successful:\n%s" % (bad, hb.log_tail(20)))
        tx_n = max(1, n // BATCH)
        t0 = time.monotonic()
        r = subprocess.run(["pgbench", "-n", "-f", script.name, "-c", "2", "-j", "2",
                            "-t", str((tx_n + 1) // 2), pg.url],
                           capture_output=True, text=True)
        pgb_s = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit("pgbench failed: %s" % r.stderr)
        rows = ((tx_n + 1) // 2) * 2 * BATCH
        rates.append((n / hibus_s, rows / pgb_s))
        print("  pair %d: hibus %d events in %.1f s = %.0f events/s (all posted after %.1f s); "
              "pgbench %d rows in %.1f s = %.0f rows/s"
              % (k + 1, n, hibus_s, n / hibus_s, posted_s, rows, pgb_s, rows / pgb_s))
    print("  median: hibus %.0f events/s, pgbench %.0f rows/s"
          % (statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)))
    stored = pg.count("stock_events")
    if stored != total_events:
        raise SystemExit("stored %d events of %d" % (stored, total_events))
    print("  hibus RSS peak while loading: %.1f MB" % rss_peak_mb(hb.proc.pid))

    hb.stop()
    hb.settings["aggregate"] = {"every": "1s"}
    periods = pg.count("aggregate_periods")
    t0 = time.monotonic()
    hb.restart()
    harness.wait_until(lambda: pg.count("aggregate_periods", "emitted_tx IS NOT NULL")
                       == periods, timeout=1800, interval=0.25, what="every period sent")
    emitted_s = time.monotonic() - t0
    harness.wait_until(lambda: pg.count("transactions", "path LIKE 'aggregate:%%' AND "
                                        "status IN ('queued', 'processing')") == 0,
                       timeout=600, interval=0.25, what="every period delivered")
    emit_s = time.monotonic() - t0
    bad = pg.count("transactions", "path LIKE 'aggregate:%%' AND status <> 'successful'")
    print("emission: %d periods (%d facilities x 12 months, %d commodities each) derived "
          "and delivered in %.1f s = %.1f periods/s (all derived and queued after %.1f s; "
          "%d not successful; the times include the process's start and its first look, "
          "1 s after it); hibus RSS peak %.1f MB"
          % (periods, FACILITIES, len(COMMODITIES), emit_s, periods / emit_s, emitted_s, bad,
             rss_peak_mb(hb.proc.pid)))

    last = months_back(1).strftime("%Y%m")
    show, sel = [], []
    for _ in range(7):
        t0 = time.monotonic()
        r = hb.cli("aggregate", "show", "-c", hb.config_path, "--facility", "FAC-B00000",
                   "--period", last)
        show.append((time.monotonic() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit("aggregate show failed: %s" % r.stderr)
        t0 = time.monotonic()
        subprocess.run(["psql", "-X", "-qAt", pg.url, "-c", "SELECT 1"], capture_output=True,
                       check=True)
        sel.append((time.monotonic() - t0) * 1000)
    lines = r.stdout.count("\n")
    print("show: hibus aggregate show --facility FAC-B00000 --period %s (%d lines, a year of "
          "%d events): median %.1f ms; psql -c 'SELECT 1': median %.1f ms"
          % (last, lines, len(facility_events(0)), statistics.median(show),
             statistics.median(sel)))
    harness.stop_all(hb, sim, pg)
    os.unlink(script.name)
    harness._outcome["ran"] = 1  # a clean run: the harness removes its work files


if __name__ == "__main__":
    main()
