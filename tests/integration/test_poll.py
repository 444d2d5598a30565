"""Polling channels (issue 12): hibus pulls a paging source on a schedule and makes
each item one transaction of the channel, delivered like a posted one.

The source here is a small HTTP server that pages its items the way OpenLMIS's
Spring Data pages do (content, number, size, totalPages, last, first), keeps only
the items modified at or after the cursor parameter, and counts every request.
Schedules are `every: 2s` (a seconds interval, which hibus offers beside cron
expressions) so the tests take seconds; one test runs a cron schedule whose slot
was missed while hibus was stopped."""

import http.server
import json
import re
import threading
import time
import unittest
import urllib.parse

import harness

PG = TARGET = SOURCE = HB = None
ADMIN_PORT = None


class Source:
    """Items by path: {"/items": [item, ...]}, each item {"id", "modified", ...}.
    fail[path] = "500" | "badjson" | "shape" makes that path answer wrongly."""

    def __init__(self):
        self.items = {}
        self.fail = {}
        self.hits = []  # (time, path, query dict)
        self.bodies = []  # (path, method, body bytes or None, Authorization)
        self.lock = threading.Lock()
        src = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.do_GET(self.rfile.read(n))

            def do_GET(self, body=None):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                with src.lock:
                    src.hits.append((time.time(), u.path, q))
                    src.bodies.append((u.path, self.command, body,
                                       self.headers.get("Authorization")))
                    items = list(src.items.get(u.path, []))
                    fail = src.fail.get(u.path)
                if u.path == "/sync":  # a sync token: the number of items already sent
                    at = int(q.get("syncToken", "0"))
                    doc = {"content": items[at:], "last": True, "nextSyncToken": str(len(items))}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path == "/slow":  # a slow source: every page takes 0.4 s
                    time.sleep(0.4)
                if u.path == "/token":  # a continuation token: the offset of the next page
                    at = int(q.get("t", "0"))
                    more = at + 2 < len(items)
                    doc = {"data": {"items": items[at:at + 2]},
                           "next": str(at + 2) if more else None}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path == "/links":  # a next link: a path, then an absolute URL
                    at = int(q.get("offset", "0"))
                    more = at + 2 < len(items)
                    nxt = "/links?offset=%d" % (at + 2)
                    if at == 2:
                        nxt = src.url + nxt
                    doc = {"results": items[at:at + 2], "links": {"next": nxt if more else None}}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path.startswith("/facilities/"):  # OpenLMIS referencedata, by id
                    fid = urllib.parse.unquote(u.path.rsplit("/", 1)[1])
                    if q.get("down"):
                        return self.answer(503, b'{"message": "restarting"}')
                    if fid == "fac-missing":
                        return self.answer(404, b'{"message": "not found"}')
                    doc = {"id": fid, "code": "FAC-0042", "name": "Comfort Health Clinic"}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path.startswith("/processingPeriods/"):
                    doc = {"id": urllib.parse.unquote(u.path.rsplit("/", 1)[1]), "name": "Oct2026",
                           "startDate": "2026-10-01", "endDate": "2026-10-31"}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path == "/plain":  # no paging: the answer is the array
                    return self.answer(200, json.dumps(items).encode())
                if u.path == "/endless":  # never says it is the last page
                    doc = {"content": items, "last": False if fail != "badlast" else "no"}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path == "/evil":  # a next link to another host
                    doc = {"results": items, "links": {"next": "http://127.0.0.2:9/steal"}}
                    return self.answer(200, json.dumps(doc).encode())
                if u.path == "/dhis":  # DHIS2's pager: pages from 1, pageCount
                    page, size = int(q.get("page", "1")), int(q.get("pageSize", "50"))
                    pages = max(1, (len(items) + size - 1) // size)
                    doc = {"pager": {"page": page, "pageCount": pages, "total": len(items),
                                     "pageSize": size},
                           "dataValues": items[(page - 1) * size:page * size]}
                    return self.answer(200, json.dumps(doc).encode())
                if fail == "500":
                    return self.answer(500, b'{"message": "database is down"}\n\xc3\xa9')
                if fail == "badjson":
                    return self.answer(200, b'{"content": [')
                since = q.get("modifiedSince")
                if since:
                    items = [i for i in items if i["modified"] >= since]
                size = int(q.get("size", "1000"))
                page = int(q.get("page", "0"))
                chunk = items[page * size:(page + 1) * size]
                pages = max(1, (len(items) + size - 1) // size)
                # org.springframework.data.domain.Page as Jackson writes it (the shape
                # OpenLMIS's search endpoints answer with)
                doc = {"content": chunk, "number": page, "size": size,
                       "numberOfElements": len(chunk), "totalElements": len(items),
                       "totalPages": pages, "first": page == 0, "last": page >= pages - 1}
                if fail == "shape":
                    doc = {"items": chunk, "last": True}
                self.answer(200, json.dumps(doc).encode())

            def answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def hits_of(self, path, page=None):
        with self.lock:
            return [h for h in self.hits
                    if h[1] == path and (page is None or h[2].get("page") == str(page))]


def poll_channel(name, path, schedule=None, every="2s", cursor=True, item_id="id", size=3,
                 **extra):
    poll = {"url": SOURCE.url + path, "timeout": "5s",
            "paging": {"items": "content", "page_param": "page", "size_param": "size",
                       "size": size, "last": "last"}}
    if schedule:
        poll["schedule"] = schedule
    else:
        poll["every"] = every
    if isinstance(cursor, dict):
        poll["cursor"] = cursor
    elif cursor:
        poll["cursor"] = {"param": "modifiedSince", "from": "2026-01-01T00:00:00Z"}
    if item_id:
        poll["item_id"] = item_id
    poll.update(extra)
    return {"name": name, "poll": poll,
            "routes": [{"name": "sink", "mediator": "http", "url": TARGET.url + "/sink/" + name,
                        "primary": True, "timeout": "5s"}]}


def item(i, modified="2026-03-01T00:00:00Z"):
    return {"id": "req-%d" % i, "modified": modified, "status": "APPROVED"}


def now_iso(offset=0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def state(channel):
    return PG.row("SELECT cursor, last_error, runs, failures, last_items, claimed_by, "
                  "next_due > now() AS future FROM poll_state WHERE channel = '%s'" % channel)


def tx_count(channel, where="true"):
    return PG.count("transactions", "channel = '%s' AND %s" % (channel, where))


def delivered_ids(channel):
    return sorted(json.loads(r.body)["id"] for r in TARGET.requests
                  if r.path == "/sink/" + channel)


def setUpModule():
    global PG, TARGET, SOURCE
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    SOURCE = Source().start()


def tearDownModule():
    harness.stop_all(SOURCE, TARGET, PG)


class PollTest(harness.TestCase):
    """One hibus with four poll channels. (Every hibus on a database must know the
    channels of the transactions there: a delivery worker fails a transaction of a
    channel its configuration lacks. So each class runs its own processes, one
    class at a time.)"""

    @classmethod
    def setUpClass(cls):
        global HB
        SOURCE.items["/paged"] = [item(i) for i in range(1, 8)]
        SOURCE.items["/replay"] = [item(i) for i in range(1, 4)]
        SOURCE.items["/flaky"] = [item(i) for i in range(1, 3)]
        SOURCE.items["/reload"] = [item(1)]
        for path in ("/token", "/links", "/dhis", "/evil"):
            SOURCE.items[path] = [item(i) for i in range(1, 6)]
        evil = poll_channel("evil", "/evil", cursor=False,
                            paging={"items": "results", "next_url": "links.next"})
        token = poll_channel("token", "/token", cursor=False,
                             paging={"items": "data.items", "next_token": "next",
                                     "token_param": "t"})
        links = poll_channel("links", "/links", cursor=False,
                             paging={"items": "results", "next_url": "links.next"})
        dhis = poll_channel("dhis", "/dhis", cursor=False, method="POST",
                            body='{"dataSet": "ds1"}',
                            auth={"basic": {"username": "hibus", "password": "s3cret"}},
                            paging={"items": "dataValues", "page_param": "page",
                                    "first_page": 1, "size_param": "pageSize", "size": 2,
                                    "total_pages": "pager.pageCount"})
        # cursor.overlap: each pull asks again for the hour before the last one began
        paged = poll_channel("paged", "/paged",
                             cursor={"param": "modifiedSince", "from": "2026-01-01T00:00:00Z",
                                     "overlap": "1h"})
        SOURCE.items["/plain"] = [{"id": 41, "n": 1}, {"id": 42, "n": 2}, {"n": "no id"}]
        SOURCE.items["/short"] = [item(i) for i in range(1, 6)]
        SOURCE.items["/endless"] = [item(1)]
        SOURCE.items["/badlast"] = [item(1)]
        # OpenLMIS v2 requisitions reference their facility and period by id only
        ref = lambda kind, i: {"id": i, "href": "http://lmis/api/%s/%s" % (kind, i)}  # noqa
        SOURCE.items["/v2"] = [
            {"id": "r1", "facility": ref("facilities", "fac-1"),
             "processingPeriod": ref("processingPeriods", "pp 10/2026"), "status": "APPROVED"},
            {"id": "r2", "facility": ref("facilities", "fac-1"),
             "processingPeriod": ref("processingPeriods", "pp 10/2026"), "status": "APPROVED"},
            {"id": "r3", "facility": ref("facilities", "fac-missing"),
             "processingPeriod": ref("processingPeriods", "pp 10/2026"), "status": "APPROVED"}]
        v2 = poll_channel("v2", "/v2", cursor=False, size=10)
        v2["poll"]["lookups"] = [
            {"id": "facility.id", "url": SOURCE.url + "/facilities/{id}", "into": "facility"},
            {"id": "processingPeriod.id", "url": SOURCE.url + "/processingPeriods/{id}",
             "into": "processingPeriod"}]
        v2down = poll_channel("v2down", "/v2", cursor=False, size=10)
        v2down["poll"]["lookups"] = [
            {"id": "facility.id", "url": SOURCE.url + "/facilities/{id}?down=1",
             "into": "facility"}]
        plain = poll_channel("plain", "/plain", cursor=False, paging=None)
        del plain["poll"]["paging"]
        short = poll_channel("short", "/short", cursor=False, size=2,
                             paging={"items": "content", "page_param": "page",
                                     "size_param": "size", "size": 2})
        endless = poll_channel("endless", "/endless", cursor=False,
                               paging={"items": "content", "page_param": "page", "last": "last",
                                       "max_pages": 3})
        down = poll_channel("down", "/x", cursor=False)
        down["poll"]["url"] = "http://127.0.0.1:%d/x" % harness.free_port()
        channels = [v2, v2down, plain, short, endless, down, token, links, dhis, evil, paged,
                    dict(poll_channel("replay", "/replay", cursor=False),
                         keep_transactions="30d"),
                    poll_channel("flaky", "/flaky"),
                    poll_channel("reload", "/reload", every="1h")]
        global ADMIN_PORT
        ADMIN_PORT = harness.free_port()
        users = {"users": [{"id": "rita", "role": "read",
                            "password_hash": harness.password_hash("rita-secret")}]}
        HB = harness.Hibus(PG.url, channels=channels,
                           settings={"delivery": {"workers": 2, "poll": "200ms"},
                                     "admin": {"port": ADMIN_PORT, "users": "admin-users.yaml",
                                               "metrics": "public"}},
                           files={"admin-users.yaml": users})
        HB.start()

    @classmethod
    def tearDownClass(cls):
        harness.stop_all(HB)

    def test_pages_cursor_and_new_items(self):
        # 7 items, 3 a page: pages 0, 1, 2; every item one transaction, delivered
        harness.wait_until(lambda: len(delivered_ids("paged")) >= 7, timeout=20,
                           what="7 pulled items at the target")
        self.assertEqual(delivered_ids("paged"), ["req-%d" % i for i in range(1, 8)])
        self.assertEqual(tx_count("paged"), 7)
        first = SOURCE.hits_of("/paged")[:3]
        self.assertEqual([h[2]["page"] for h in first], ["0", "1", "2"])
        self.assertEqual({h[2]["modifiedSince"] for h in first}, {"2026-01-01T00:00:00Z"})
        self.assertEqual({h[2]["size"] for h in first}, {"3"})
        harness.wait_until(lambda: state("paged")["cursor"] is not None, timeout=10,
                           what="the cursor stored")
        cursor = state("paged")["cursor"]
        self.assertRegex(cursor, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(now_iso(-3600 - 30) < cursor <= now_iso(-3600), cursor)
        row = PG.row("SELECT client, method, path, mode FROM transactions "
                     "WHERE channel = 'paged' ORDER BY id LIMIT 1")
        self.assertEqual(row, {"client": "poll", "method": "POST", "path": "/paged",
                               "mode": "async"})

        # two items modified now: the next slot sends the cursor and gets only them
        with SOURCE.lock:
            SOURCE.items["/paged"] += [item(8, now_iso(5)), item(9, now_iso(5))]
        harness.wait_until(lambda: len(delivered_ids("paged")) >= 9, timeout=20,
                           what="the 2 new items at the target")
        # the next slot asks for them again (the cursor's hour of overlap), and skips them
        harness.wait_until(lambda: 'poll channel "paged": pulled 1 page, stored 0 items (2 seen '
                           'before)' in HB.log_text(), timeout=15, what="the overlap re-pulled")
        self.assertEqual(delivered_ids("paged"), ["req-%d" % i for i in range(1, 10)])
        self.assertEqual(tx_count("paged"), 9)
        later = [h for h in SOURCE.hits_of("/paged", page=0)
                 if h[2]["modifiedSince"] != "2026-01-01T00:00:00Z"]
        self.assertTrue(later, "no pull sent the stored cursor")
        self.assertGreater(later[0][2]["modifiedSince"], "2026-01-01T00:00:00Z")

    def test_item_id_deduplicates(self):
        # no cursor: every slot gets the same 3 items; the ids make one transaction each
        harness.wait_until(lambda: state("replay") and state("replay")["runs"] >= 3,
                           timeout=20, what="three pulls of replay")
        harness.wait_until(lambda: len(delivered_ids("replay")) >= 3, timeout=10,
                           what="3 items delivered")
        self.assertEqual(tx_count("replay"), 3)
        self.assertEqual(PG.count("poll_items", "channel = 'replay'"), 3)
        self.assertEqual(delivered_ids("replay"), ["req-1", "req-2", "req-3"])
        self.assertIn("stored 0 items (3 seen before)", HB.log_text())

        # retention: the ids the source still returns stay (pulling them again moves
        # their seen_at), an id it has not returned for longer than the channel's
        # keep_transactions goes
        PG.psql("UPDATE poll_items SET seen_at = now() - interval '40 days'"
                " WHERE channel = 'replay'")
        PG.psql("INSERT INTO poll_items (channel, item_id, transaction_id, seen_at)"
                " VALUES ('replay', 'req-gone', 0, now() - interval '40 days')")
        runs = state("replay")["runs"]
        harness.wait_until(lambda: state("replay")["runs"] >= runs + 2, timeout=20,
                           what="two more pulls of replay")
        self.assertEqual(PG.count("poll_items", "channel = 'replay' AND seen_at > now() - "
                                  "interval '1 day'"), 3)
        r = HB.cli("prune", "-c", HB.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pulled item ids removed 1", r.stdout)
        self.assertEqual(PG.scalar("SELECT string_agg(item_id, ',' ORDER BY item_id) FROM "
                                   "poll_items WHERE channel = 'replay'"), "req-1,req-2,req-3")
        self.assertEqual(tx_count("replay"), 3)

    def test_failing_source_keeps_cursor_and_retries(self):
        harness.wait_until(lambda: state("flaky") and state("flaky")["cursor"], timeout=20,
                           what="a first successful pull of flaky")
        good = state("flaky")
        # (the answer is quoted in printable ASCII only: newline and UTF-8 become "?")
        for mode, words in (("500", "with HTTP 500: {\"message\": \"database is down\"}???"),
                            ("badjson", "is not JSON"),
                            ("shape", "has no array of items at \"content\"")):
            with SOURCE.lock:
                SOURCE.fail["/flaky"] = mode
            harness.wait_until(lambda: (state("flaky")["last_error"] or "").find(words) >= 0,
                               timeout=10, what="the %s failure recorded" % mode)
            s = state("flaky")
            self.assertEqual(s["cursor"], good["cursor"])
            if mode == "500":
                metrics = harness.http_request(ADMIN_PORT, "GET", "/metrics").body.decode()
                self.assertIn('hibus_poll_failing{channel="flaky"} 1\n', metrics)
                out = HB.cli("polls", "-c", HB.config_path).stdout
                self.assertRegex(out, r"  last error \(\d{4}-[^)]*\): the source answered page 1 "
                                      r"\(http://127.0.0.1:\d+/flaky\?modifiedSince=")
            self.assertIn('poll channel "flaky": pull failed', HB.log_text())
        with SOURCE.lock:
            SOURCE.fail.pop("/flaky")
            SOURCE.items["/flaky"].append(item(3, now_iso(5)))
        harness.wait_until(lambda: state("flaky")["last_error"] is None, timeout=10,
                           what="a successful pull after the failures")
        s = state("flaky")
        self.assertGreater(s["cursor"], good["cursor"])
        self.assertGreaterEqual(s["failures"], 3)
        r = HB.cli("polls", "-c", HB.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("flaky\n  schedule every 2000ms, next ", r.stdout)
        self.assertIn("cursor %s\n" % s["cursor"], r.stdout)
        r = HB.cli("polls", "-c", HB.config_path, "--json")
        flaky = [p for p in json.loads(r.stdout) if p["channel"] == "flaky"][0]
        self.assertEqual(flaky["last_error"], None)
        self.assertGreaterEqual(flaky["failures"], 3)
        metrics = harness.http_request(ADMIN_PORT, "GET", "/metrics").body.decode()
        self.assertIn('hibus_poll_failing{channel="flaky"} 0\n', metrics)
        self.assertRegex(metrics, r'hibus_poll_failures_total\{channel="flaky"\} [3-9]')
        self.assertIn("# TYPE hibus_poll_runs_total counter\n", metrics)
        harness.wait_until(lambda: len(delivered_ids("flaky")) >= 3, timeout=10,
                           what="the new item delivered")
        self.assertEqual(delivered_ids("flaky"), ["req-1", "req-2", "req-3"])
        self.assertTrue(HB.running)

    def test_other_paging_styles(self):
        # 5 items, 2 a page, in three styles: each pulled whole, each item once
        for name in ("token", "links", "dhis"):
            harness.wait_until(lambda: len(delivered_ids(name)) >= 5, timeout=20,
                               what="5 items of %s at the target" % name)
            self.assertEqual(delivered_ids(name), ["req-%d" % i for i in range(1, 6)])
        first = lambda path: [h[2] for h in SOURCE.hits_of(path)][:3]  # noqa: E731
        self.assertEqual(first("/token"), [{}, {"t": "2"}, {"t": "4"}])
        self.assertEqual(first("/links"), [{}, {"offset": "2"}, {"offset": "4"}])
        self.assertEqual(first("/dhis"), [{"page": str(p), "pageSize": "2"} for p in (1, 2, 3)])
        with SOURCE.lock:
            sent = [b for b in SOURCE.bodies if b[0] == "/dhis"][:3]
        self.assertEqual({(m, body) for _, m, body, _ in sent},
                         {("POST", b'{"dataSet": "ds1"}')})
        self.assertEqual({a for _, _, _, a in sent}, {"Basic aGlidXM6czNjcmV0"})
        self.assertIn('poll channel "dhis": pulled 3 pages, stored 5 items', HB.log_text())

    def test_lookups_fill_in_references(self):
        harness.wait_until(lambda: len(delivered_ids("v2")) >= 3, timeout=10,
                           what="3 v2 requisitions at the target")
        got = {json.loads(r.body)["id"]: json.loads(r.body) for r in TARGET.requests
               if r.path == "/sink/v2"}
        self.assertEqual(got["r1"]["facility"],
                         {"id": "fac-1", "code": "FAC-0042", "name": "Comfort Health Clinic"})
        self.assertEqual(got["r2"]["processingPeriod"],
                         {"id": "pp 10/2026", "name": "Oct2026", "startDate": "2026-10-01",
                          "endDate": "2026-10-31"})
        # a reference the source does not know stays as it was, for the transform to judge
        self.assertEqual(got["r3"]["facility"],
                         {"id": "fac-missing", "href": "http://lmis/api/facilities/fac-missing"})
        self.assertIn('lookup 0 of item 2 of page 1: %s/facilities/fac-missing answered HTTP '
                      '404' % SOURCE.url, HB.log_text())
        # each reference fetched with its id percent-encoded
        with SOURCE.lock:
            fetched = [h[1] for h in SOURCE.hits if h[1].startswith(("/facilities/",
                                                                     "/processingPeriods/"))]
        self.assertEqual(sorted(set(fetched)), ["/facilities/fac-1",
                                                   "/facilities/fac-missing",
                                                   "/processingPeriods/pp%2010%2F2026"])
        # three items name one period: one request for it in the pull; later pulls find
        # the items seen before and look nothing up
        harness.wait_until(lambda: state("v2")["runs"] >= 3, timeout=10, what="3 pulls of v2")
        with SOURCE.lock:
            periods = len([h for h in SOURCE.hits if h[1].startswith("/processingPeriods/")])
        self.assertEqual(periods, 1)
        # a lookup that fails fails the pull: nothing stored, tried again at the next slot
        harness.wait_until(lambda: state("v2down") and state("v2down")["last_error"],
                           timeout=10, what="the failed lookup recorded")
        self.assertEqual(state("v2down")["last_error"],
                         "lookup 0 of item 0 of page 1 (%s/facilities/fac-1?down=1) was "
                         "answered with HTTP 503" % SOURCE.url)
        self.assertEqual(tx_count("v2down"), 0)

    def test_other_shapes_and_failures(self):
        # an answer that is the array itself; integer ids; an item without an id
        harness.wait_until(lambda: tx_count("plain") >= 3, timeout=10, what="3 plain items")
        self.assertIn('poll channel "plain": item 2 of page 1 has no id at "id"', HB.log_text())
        self.assertEqual(PG.scalar("SELECT string_agg(item_id, ',' ORDER BY item_id) "
                                   "FROM poll_items WHERE channel = 'plain'"), "41,42")
        # pages of 2 without last or total_pages: the short page is the last
        harness.wait_until(lambda: len(delivered_ids("short")) >= 5, timeout=10,
                           what="5 short items")
        self.assertEqual([h[2]["page"] for h in SOURCE.hits_of("/short")][:3], ["0", "1", "2"])
        # a source that never says "last" stops at max_pages, as a failure
        harness.wait_until(lambda: state("endless") and state("endless")["last_error"],
                           timeout=10, what="endless stopped")
        self.assertEqual(state("endless")["last_error"],
                         "the source has more than 3 pages (poll.paging.max_pages); nothing "
                         "after them was pulled")
        with SOURCE.lock:
            SOURCE.fail["/endless"] = "badlast"
        harness.wait_until(lambda: "boolean" in (state("endless")["last_error"] or ""),
                           timeout=10, what="a last that is not a boolean")
        self.assertEqual(state("endless")["last_error"],
                         'page 1 of the answer has no boolean at "last" (poll.paging.last)')
        # nobody listening
        harness.wait_until(lambda: state("down") and state("down")["last_error"], timeout=10,
                           what="the source that is down")
        self.assertRegex(state("down")["last_error"],
                         r"^the source did not answer page 1 "
                         r"\(http://127.0.0.1:\d+/x\?page=0&size=3\): \S")

    def test_next_url_stays_on_the_source(self):
        # an answer that sends hibus (and its credentials) to another host is refused
        harness.wait_until(lambda: state("evil") and state("evil")["last_error"], timeout=10,
                           what="the evil link refused")
        self.assertIn('page 1 of the answer has no URL at "links.next" (poll.paging.next_url: '
                      'a path starting with "/" or an absolute URL on the source\'s own scheme, '
                      'host and port)', state("evil")["last_error"])

    def test_reload_changes_schedule(self):
        # every: 1h: registered, not due for an hour
        harness.wait_until(lambda: state("reload") is not None, timeout=10,
                           what="reload registered")
        time.sleep(1.5)
        self.assertEqual(SOURCE.hits_of("/reload"), [])
        self.assertTrue(state("reload")["future"])
        for ch in HB.channels:
            if ch["name"] == "reload":
                ch["poll"]["every"] = "2s"
        HB.reload()
        harness.wait_until(lambda: len(SOURCE.hits_of("/reload")) >= 1, timeout=10,
                           what="a pull under the new schedule")
        harness.wait_until(lambda: delivered_ids("reload") == ["req-1"], timeout=10,
                           what="its item delivered")


class TwoNodesTest(harness.TestCase):
    """Two hibus processes on one database pull each slot once."""

    def test_each_slot_once(self):
        with SOURCE.lock:
            SOURCE.items["/shared"] = [item(i) for i in range(1, 5)]
        ch = poll_channel("shared", "/shared", cursor=False, size=10)
        a = harness.Hibus(PG.url, channels=[ch], name="nodeA")
        b = a.clone(name="nodeB")
        a.start()
        b.start()
        try:
            harness.wait_until(lambda: len(SOURCE.hits_of("/shared")) >= 5, timeout=30,
                               what="five pulls of shared")
        finally:
            a.stop()
            b.stop()
        hits = SOURCE.hits_of("/shared")
        runs = int(PG.scalar("SELECT runs FROM poll_state WHERE channel = 'shared'"))
        self.assertEqual(len(hits), runs, "a slot was pulled twice, or a pull not counted")
        gaps = [b[0] - a[0] for a, b in zip(hits, hits[1:])]
        self.assertTrue(all(g > 1.5 for g in gaps), "pulls closer than a slot: %r" % gaps)
        # the items became transactions once
        self.assertEqual(tx_count("shared"), 4)
        self.assertIn("poll channel \"shared\": pulled", a.log_text() + b.log_text())


class DatabaseDownTest(harness.TestCase):
    """PostgreSQL goes away: the poller says so (once, not every second), pulls
    nothing it could not store, and carries on when the database is back."""

    def test_database_down_and_back(self):
        with SOURCE.lock:
            SOURCE.items["/dbdown"] = [item(1)]
        ch = poll_channel("dbdown", "/dbdown", cursor=False, every="1s")
        h = harness.Hibus(PG.url, channels=[ch], name="dbdown")
        h.start()
        try:
            harness.wait_until(lambda: state("dbdown") and state("dbdown")["runs"] >= 1,
                               timeout=10, what="a first pull")
            PG.stop()
            try:
                hits = len(SOURCE.hits_of("/dbdown"))
                time.sleep(4)
                log = h.log_text()
                # the slot cannot be claimed: the source is not asked, the log says why
                self.assertLessEqual(len(SOURCE.hits_of("/dbdown")), hits + 1)
                self.assertEqual(log.count('WARN poller: poll channel "dbdown": could not look '
                                           'for a due slot'), 1, log[-3000:])
            finally:
                PG.start()
            runs = state("dbdown")["runs"]
            harness.wait_until(lambda: state("dbdown")["runs"] >= runs + 2, timeout=15,
                               what="pulls again once the database is back")
            self.assertIsNone(state("dbdown")["last_error"])
            self.assertEqual(tx_count("dbdown"), 1)

            # a claim another process holds keeps this one off the channel...
            PG.psql("UPDATE poll_state SET claimed_by = 'elsewhere:1', claimed_until = now() + "
                    "interval '1 hour' WHERE channel = 'dbdown'")
            runs = state("dbdown")["runs"]
            time.sleep(3)
            self.assertEqual(state("dbdown")["runs"], runs)
            # ...but a claim left by this very process (a pull that could not record
            # its end) is stale at once: its pulls run one at a time
            node = re.search(r"node (\S+)\)", h.log_text()).group(1)
            PG.psql("UPDATE poll_state SET claimed_by = '%s' WHERE channel = 'dbdown'" % node)
            harness.wait_until(lambda: state("dbdown")["runs"] >= runs + 2, timeout=10,
                               what="pulls again over its own stale claim")
        finally:
            h.stop()


class MissedSlotTest(harness.TestCase):
    """A cron slot missed while hibus was stopped runs once at start."""

    def test_missed_slot_runs_once(self):
        with SOURCE.lock:
            SOURCE.items["/yearly"] = [item(1)]
        ch = poll_channel("yearly", "/yearly", schedule="0 0 1 1 *")
        h = harness.Hibus(PG.url, channels=[ch], name="yearly")
        h.start()
        harness.wait_until(lambda: state("yearly") is not None, timeout=10,
                           what="yearly registered")
        time.sleep(1.5)
        h.stop()
        self.assertEqual(SOURCE.hits_of("/yearly"), [])  # its first slot is next 1 January
        # while it was down, three yearly slots passed
        PG.psql("UPDATE poll_state SET next_due = now() - interval '3 years' "
                "WHERE channel = 'yearly'")
        h.restart()
        try:
            harness.wait_until(lambda: len(SOURCE.hits_of("/yearly")) >= 1, timeout=10,
                               what="the missed slot pulled at start")
            time.sleep(3)
            self.assertEqual(len(SOURCE.hits_of("/yearly")), 1)
            due = PG.scalar("SELECT to_char(next_due AT TIME ZONE 'UTC', 'MM-DD HH24:MI') "
                            "FROM poll_state WHERE channel = 'yearly'")
            self.assertEqual(due, "01-01 00:00")
            self.assertTrue(state("yearly")["future"])
            harness.wait_until(lambda: delivered_ids("yearly") == ["req-1"], timeout=10,
                               what="the item delivered")
        finally:
            h.stop()


class PollAggregateTest(harness.TestCase):
    """A polling channel with an aggregate stage: each pulled item is an OpenLMIS stock
    event (StockEventDto, as the stock management service stores it), stored once
    however often it is pulled again, and the closed month reaches DHIS2 as figures."""

    FACILITY = "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce"   # OpenLMIS demo data ids
    PROGRAM = "dce17f2e-af3e-40ad-8e00-3496adef44c3"
    ORDERABLE = "23819693-0670-4c4b-b400-28e009b0d8ff"

    def stock_event(self, eid, line):
        line = dict(line, orderableId=self.ORDERABLE)
        return {"id": eid, "modified": "2026-03-01T00:00:00Z", "facilityId": self.FACILITY,
                "programId": self.PROGRAM, "lineItems": [line]}

    def test_pulled_stock_events_become_monthly_figures(self):
        sim = harness.DHIS2Sim(name="dhis2-sim-poll").start()
        self.addCleanup(sim.stop)
        ou = harness.DHIS2Sim.ORG_UNITS["FAC-0043"]
        de = harness.DHIS2Sim.DATA_ELEMENTS["ORS1L"]
        # August 2026: a physical inventory of 100 on the 1st (the history starts with
        # it: the opening balance), 50 received on the 10th, 30 issued on the 20th:
        # opening 100, received 50, consumed 30, on hand 120, no stock-out day
        with SOURCE.lock:
            SOURCE.items["/stockEvents"] = [
                self.stock_event("ev-1", {"quantity": 100, "occurredDate": "2026-08-01"}),
                self.stock_event("ev-2", {"quantity": 50, "occurredDate": "2026-08-10",
                                          "sourceId": "a337ec45-31a0-4f2b-9b2e-a105c4b669bb"}),
                self.stock_event("ev-3", {"quantity": 30, "occurredDate": "2026-08-20",
                                          "destinationId":
                                          "0bd28568-43f1-4836-934d-ec5fb11398e8"})]
        ch = poll_channel("olmis-events", "/stockEvents", cursor=False, every="1s")
        ch["transform"] = {"reader": "openlmis-stock-event", "mapping": "olmis",
                           "quality": ["non_negative", "balance"]}
        ch["aggregate"] = {"close_after": "1s"}
        ch["routes"] = [harness.sim_route(sim)]
        mapping = harness.mapping_doc(org_units={self.FACILITY: ou},
                                      items={self.ORDERABLE: {"data_element": de}})
        h = harness.Hibus(PG.url, channels=[ch], name="poll-aggregate",
                          settings={"mappings": "mappings", "aggregate": {"every": "1s"},
                                    "delivery": {"poll": "200ms"}},
                          files={"mappings/olmis.yaml": mapping})
        h.start()
        try:
            want = harness.sort_values([
                harness.dv(de, "202608", ou, harness.DHIS2Sim.MEASURES[m], str(v))
                for m, v in (("opening_balance", 100), ("received", 50), ("consumed", 30),
                             ("losses", 0), ("adjustments", 0), ("stock_on_hand", 120),
                             ("stockout_days", 0))])
            got = lambda: [v for v in sim.values() if v["period"] == "202608"]  # noqa
            harness.wait_until(lambda: got() == want, timeout=30,
                               what="August's figures at the simulator: %r\nhibus log:\n%s"
                               % (want, h.log_tail(30)))
            # pulled again every second: each event stored once, the month sent once
            runs = state("olmis-events")["runs"]
            harness.wait_until(lambda: state("olmis-events")["runs"] >= runs + 2, timeout=10,
                               what="two more pulls")
            self.assertEqual(PG.count("stock_events", "channel = 'olmis-events'"), 3)
            self.assertEqual(tx_count("olmis-events", "path LIKE 'aggregate:%'"), 1)
            self.assertEqual(tx_count("olmis-events", "path NOT LIKE 'aggregate:%'"), 3)
            # a late event pulled later: August is sent again as a correction
            with SOURCE.lock:
                SOURCE.items["/stockEvents"].append(self.stock_event(
                    "ev-4", {"quantity": 5, "occurredDate": "2026-08-25",
                             "destinationId": "0bd28568-43f1-4836-934d-ec5fb11398e8"}))
            want_after = [dict(v, value={"consumed": "35", "stock_on_hand": "115"}.get(
                [m for m, c in harness.DHIS2Sim.MEASURES.items()
                 if c == v["categoryOptionCombo"]][0], v["value"])) for v in want]
            harness.wait_until(lambda: got() == harness.sort_values(want_after), timeout=30,
                               what="August corrected: %r, has %r" % (want_after, got()))
            self.assertEqual(tx_count("olmis-events", "path LIKE 'aggregate:%'"), 2)
        finally:
            h.stop()


class SlowPullTest(harness.TestCase):
    """A pull longer than its claim: 20 pages of 0.4 s each (8 s) under a claim of
    6 s (poll.timeout 1 s and 5 s; delivery.lease 3 s) is renewed as it goes, and
    every item arrives from one pull."""

    def test_a_long_pull_renews_its_claim(self):
        with SOURCE.lock:
            SOURCE.items["/slow"] = [item(i) for i in range(1, 21)]
        ch = poll_channel("slow", "/slow", cursor=False, every="1h", size=1)
        ch["poll"]["timeout"] = "1s"
        h = harness.Hibus(PG.url, channels=[ch], name="slow-pull",
                          settings={"delivery": {"lease": "3s", "poll": "200ms"}})
        h.start()
        try:
            harness.wait_until(lambda: state("slow") is not None, timeout=10,
                               what="slow registered")
            PG.psql("UPDATE poll_state SET next_due = now() WHERE channel = 'slow'")
            harness.wait_until(lambda: state("slow")["claimed_by"] is None
                               and state("slow")["runs"] == 1, timeout=30,
                               what="the slow pull to end")
            s = state("slow")
            self.assertIsNone(s["last_error"], s)
            self.assertEqual(s["last_items"], 20, s)
            self.assertEqual(len(SOURCE.hits_of("/slow")), 20)
            harness.wait_until(lambda: len(delivered_ids("slow")) == 20, timeout=10,
                               what="20 items delivered")
        finally:
            h.stop()


class CursorFromSourceTest(harness.TestCase):
    """cursor.from_items (the items' largest modification time) and cursor.token (the
    source's own sync token) instead of hibus's clock."""

    def test_cursor_from_items_and_token(self):
        with SOURCE.lock:
            SOURCE.items["/byitem"] = [item(1, "2026-03-01T00:00:00Z"),
                                       item(2, "2026-03-05T10:00:00Z"),
                                       item(3, "2026-03-02T00:00:00Z")]
            SOURCE.items["/sync"] = [item(i) for i in range(1, 4)]
        byitem = poll_channel("byitem", "/byitem", every="1h",
                              cursor={"param": "modifiedSince", "from": "2026-01-01T00:00:00Z",
                                      "from_items": "modified"})
        sync = poll_channel("sync", "/sync", every="1h", cursor={"param": "syncToken",
                                                                  "token": "nextSyncToken"},
                            paging=None)
        sync["poll"]["paging"] = {"items": "content"}
        h = harness.Hibus(PG.url, channels=[byitem, sync], name="cursors",
                          settings={"delivery": {"poll": "200ms"}})
        h.start()

        def pull_now(ch, runs):
            r = h.cli("polls", "run", "-c", h.config_path, ch)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("%s: pulled at the next look" % ch, r.stdout)
            harness.wait_until(lambda: state(ch)["runs"] == runs
                               and state(ch)["claimed_by"] is None, timeout=15,
                               what="pull %d of %s" % (runs, ch))
            self.assertIsNone(state(ch)["last_error"])
        try:
            harness.wait_until(lambda: state("byitem") and state("sync"), timeout=10,
                               what="both registered")
            pull_now("byitem", 1)
            pull_now("sync", 1)
            # the largest modification time pulled, not the time of the pull
            self.assertEqual(state("byitem")["cursor"], "2026-03-05T10:00:00Z")
            self.assertEqual(state("sync")["cursor"], "3")
            self.assertNotIn("syncToken", SOURCE.hits_of("/sync")[0][2])  # none at first
            with SOURCE.lock:
                SOURCE.items["/byitem"].append(item(4, "2026-04-01T08:00:00Z"))
                SOURCE.items["/sync"] += [item(4), item(5)]
            pull_now("byitem", 2)
            pull_now("sync", 2)
            self.assertEqual(SOURCE.hits_of("/byitem")[-1][2]["modifiedSince"],
                             "2026-03-05T10:00:00Z")
            self.assertEqual(state("byitem")["cursor"], "2026-04-01T08:00:00Z")
            self.assertEqual(SOURCE.hits_of("/sync")[-1][2]["syncToken"], "3")
            self.assertEqual(state("sync")["cursor"], "5")
            # the item at the cursor's edge came again and made no second transaction
            harness.wait_until(lambda: len(delivered_ids("byitem")) == 4
                               and len(delivered_ids("sync")) == 5, timeout=10,
                               what="every item delivered once")
            self.assertEqual(tx_count("byitem"), 4)
            self.assertEqual(tx_count("sync"), 5)
            # a pull with nothing new keeps the cursor
            pull_now("byitem", 3)
            pull_now("sync", 3)
            self.assertEqual(state("byitem")["cursor"], "2026-04-01T08:00:00Z")
            self.assertEqual(state("sync")["cursor"], "5")
            # an operator sets the cursor back: the next pull asks from there (what
            # comes again makes no second transaction), then it moves on as before
            r = h.cli("polls", "reset", "-c", h.config_path, "byitem", "2026-03-02T00:00:00Z")
            self.assertEqual((r.returncode, r.stdout),
                             (0, "byitem: cursor set to 2026-03-02T00:00:00Z\n"), r.stderr)
            pull_now("byitem", 4)
            self.assertEqual(SOURCE.hits_of("/byitem")[-1][2]["modifiedSince"],
                             "2026-03-02T00:00:00Z")
            self.assertEqual(state("byitem")["cursor"], "2026-04-01T08:00:00Z")
            r = h.cli("polls", "reset", "-c", h.config_path, "sync")
            self.assertEqual((r.returncode, r.stdout),
                             (0, "sync: cursor cleared; the next pull sends no cursor\n"),
                             r.stderr)
            pull_now("sync", 4)
            self.assertNotIn("syncToken", SOURCE.hits_of("/sync")[-1][2])
            self.assertEqual(tx_count("byitem"), 4)
            self.assertEqual(tx_count("sync"), 5)
            # what is not a polling channel, or not yet on this database
            r = h.cli("polls", "run", "-c", h.config_path, "nosuch")
            self.assertEqual(r.returncode, 1)
            self.assertIn('"nosuch" is not a polling channel of this configuration', r.stderr)
            r = h.cli("polls", "rewind", "-c", h.config_path, "sync")
            self.assertEqual(r.returncode, 2)
            self.assertIn("usage: hibus polls", r.stderr)
        finally:
            h.stop()


class TimezoneTest(harness.TestCase):
    """poll.timezone: a schedule read on a zone's wall clock; the database applies
    the zone (its offset, and daylight saving time where there is one)."""

    def test_slots_on_the_zones_clock(self):
        with SOURCE.lock:
            SOURCE.items["/nairobi"] = [item(1)]
            SOURCE.items["/berlin"] = [item(1)]
        nairobi = poll_channel("nairobi", "/nairobi", schedule="0 6 * * *",
                               timezone="Africa/Nairobi")
        berlin = poll_channel("berlin", "/berlin", schedule="0 6 * * *",
                              timezone="Europe/Berlin")
        utc = poll_channel("utc6", "/berlin", schedule="0 6 * * *")
        h = harness.Hibus(PG.url, channels=[nairobi, berlin, utc], name="tz")
        h.start()

        def due(channel):
            return PG.row("SELECT to_char(next_due AT TIME ZONE 'UTC', 'HH24:MI') AS utc, "
                          "to_char(next_due AT TIME ZONE 'Europe/Berlin', 'HH24:MI') AS berlin "
                          "FROM poll_state WHERE channel = '%s'" % channel)
        try:
            harness.wait_until(lambda: all(state(c) for c in ("nairobi", "berlin", "utc6")),
                               timeout=10, what="the three registered")
            # 06:00 in Nairobi is 03:00 UTC all year (EAT, UTC+3, no daylight saving)
            self.assertEqual(due("nairobi")["utc"], "03:00")
            self.assertEqual(due("utc6")["utc"], "06:00")
            # 06:00 in Berlin, whichever of CET and CEST the next one falls in
            self.assertEqual(due("berlin")["berlin"], "06:00")
            self.assertIn(due("berlin")["utc"], ("04:00", "05:00"))
            # a missed slot runs once at start, and the next is again 06:00 Nairobi time
            h.stop()
            PG.psql("UPDATE poll_state SET next_due = now() - interval '2 days' "
                    "WHERE channel = 'nairobi'")
            h.restart()
            harness.wait_until(lambda: len(SOURCE.hits_of("/nairobi")) == 1, timeout=10,
                               what="the missed Nairobi slot")
            harness.wait_until(lambda: state("nairobi")["future"], timeout=5,
                               what="the next Nairobi slot")
            self.assertEqual(due("nairobi")["utc"], "03:00")
        finally:
            h.stop()


class ConfigTest(harness.TestCase):

    def check(self, channel_text):
        h = harness.Hibus(PG.url, channels=[("bad.yaml", channel_text)], name="check")
        h.write_config()
        r = h.cli("check", "-c", h.config_path)
        return r.returncode, r.stdout + r.stderr

    def test_bad_cron_names_field_and_place(self):
        rc, out = self.check("name: bad\n"
                             "poll:\n"
                             "  url: http://127.0.0.1:1/x\n"
                             "  schedule: \"*/5 * * 13 *\"\n"
                             "routes:\n"
                             "  - { name: r, url: \"http://127.0.0.1:1/y\", primary: true }\n")
        self.assertEqual(rc, 1, out)
        self.assertIn('channels/bad.yaml:4:13: invalid cron expression "*/5 * * 13 *" in '
                      'poll.schedule: month: "13" is out of range (1-12)', out)

    def test_poll_channel_takes_no_match(self):
        rc, out = self.check("name: bad\n"
                             "match: { path: /x }\n"
                             "poll:\n"
                             "  url: http://127.0.0.1:1/x\n"
                             "  every: 2s\n"
                             "  paging: { next_token: next, page_param: page }\n"
                             "routes:\n"
                             "  - { name: r, url: \"http://127.0.0.1:1/y\", primary: true }\n")
        self.assertEqual(rc, 1, out)
        self.assertIn("channels/bad.yaml:2:1: match applies only to channels that are posted "
                      "to; this channel pulls its requests (poll:), remove match", out)
        self.assertIn("channels/bad.yaml:6:", out)
        self.assertIn("poll.paging has both next_token and page_param", out)

    def test_unknown_time_zone(self):
        rc, out = self.check("name: bad\n"
                             "poll:\n"
                             "  url: http://127.0.0.1:1/x\n"
                             "  schedule: \"0 6 * * *\"\n"
                             "  timezone: Africa/Nairobbi\n"
                             "routes:\n"
                             "  - { name: r, url: \"http://127.0.0.1:1/y\", primary: true }\n")
        self.assertEqual(rc, 1, out)
        self.assertIn('channels/bad.yaml:5:13: unknown time zone "Africa/Nairobbi" for '
                      'poll.timezone', out)

    def test_good_poll_channel_checks(self):
        rc, out = self.check("name: good\n"
                             "poll:\n"
                             "  url: http://127.0.0.1:1/x\n"
                             "  schedule: \"@daily\"\n"
                             "  auth: { basic: { username: u, password: p } }\n"
                             "  paging: { items: dataValues, page_param: page, first_page: 1,"
                             " total_pages: pager.pageCount }\n"
                             "routes:\n"
                             "  - { name: r, url: \"http://127.0.0.1:1/y\", primary: true }\n")
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
