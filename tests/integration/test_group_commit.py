"""Inserts that arrive together are committed together (one pipeline, one commit),
each request still answered only after the commit that holds its row; a batch the
database refuses as a whole is run again one insert at a time (here: the month's
partition is missing, which the single insert makes). Outcomes (the update that
ends a sync request) are grouped the same way, and a refused batch of outcomes is
recorded one by one, so one bad outcome costs no other request its record."""

import contextlib
import json
import threading
import unittest

import harness

PASSWORD = "lmis-itest-secret"
AUTH = ("lmis-national", PASSWORD)
PG = TARGET = HB = None


def setUpModule():
    global PG, TARGET, HB
    PG = harness.PgCluster().start()
    TARGET = harness.Target().start()
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[harness.channel("queued", "/async", TARGET.url + "/in",
                                                 mode="async"),
                                 harness.channel("sync", "/sync", TARGET.url + "/in")],
                       settings={"delivery": {"workers": 0}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def burst(tag, threads=32, each=6, path="/async", poison=None):
    """Posts threads x each requests at once; returns the ids hibus answered.
    poison: (t, i) of a request whose body says "poison"."""
    ids, errors = [], []
    lock = threading.Lock()

    def client(t):
        for i in range(each):
            body = json.dumps({"tag": tag, "t": t, "i": i,
                               "poison": (t, i) == poison}).encode()
            try:
                r = HB.request("POST", path, body=body, auth=AUTH,
                               headers={"Content-Type": "application/json"})
                with lock:
                    if r.status == 202:
                        ids.append(r.json()["id"])
                    elif r.status == 200 and path == "/sync":
                        ids.append(int(r.headers["x-hibus-transaction"]))
                    else:
                        errors.append((r.status, r.body[:200]))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))

    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ids, errors


@contextlib.contextmanager
def trigger(name, event, body):
    """A row trigger made for a test on transactions (BEFORE event), with body as its
    PL/pgSQL statements before RETURN NEW; dropped again afterwards."""
    PG.psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN %s RETURN NEW; END $$;"
            " CREATE TRIGGER %s BEFORE %s ON transactions"
            " FOR EACH ROW EXECUTE FUNCTION %s()" % (name, body, name, event, name))
    try:
        yield
    finally:
        PG.psql("DROP TRIGGER %s ON transactions; DROP FUNCTION %s()" % (name, name))


SLOW = "PERFORM pg_sleep(0.02);"


class GroupCommitTest(harness.TestCase):

    def test_1_inserts_share_commits(self):
        # each insert takes 20 ms longer (a trigger made for the test), so that the
        # requests of the burst are sure to arrive while one is on its way
        with trigger("itest_slow", "INSERT", SLOW):
            ids, errors = burst("share")
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 32 * 6)
        rows = PG.psql("SELECT id, convert_from(request_body, 'UTF8'), xmin::text"
                       " FROM transactions"
                       " WHERE convert_from(request_body, 'UTF8') LIKE '%\"share\"%'")
        self.assertEqual(sorted(int(r[0]) for r in rows), sorted(ids))
        # every row with its own body
        self.assertEqual(len({r[1] for r in rows}), len(ids))
        # rows of one commit share their inserting transaction id (xmin): fewer
        # commits than requests (the workers are off, so nothing updated them)
        commits = len({r[2] for r in rows})
        self.assertLess(commits, len(rows), "no two inserts shared a commit")

    def test_2_refused_batch_goes_one_by_one(self):
        # the current month's partition is gone (hibus was not running when the
        # month began): the batch fails as a whole, each insert alone makes the
        # partition and is stored
        part = PG.scalar("SELECT 'transactions_' || to_char(now() AT TIME ZONE 'UTC',"
                         " '\"y\"YYYY\"m\"MM')")
        PG.psql("DROP TABLE %s; DROP TABLE %s" % (part, part.replace("transactions", "attempts")))
        ids, errors = burst("refused", threads=16, each=3)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 16 * 3)
        self.assertEqual(PG.scalar("SELECT count(*) FROM %s" % part), str(16 * 3))

    def test_3_outcomes_share_commits(self):
        # each outcome update takes 20 ms longer, so that outcomes of the burst arrive
        # while one is on its way
        with trigger("itest_slow_upd", "UPDATE", SLOW):
            ids, errors = burst("outcomes", threads=24, each=4, path="/sync")
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 24 * 4)
        rows = PG.psql("SELECT status, xmin::text, (SELECT count(*) FROM attempts a"
                       " WHERE a.transaction_id = t.id) FROM transactions t"
                       " WHERE id IN (%s)" % ",".join(str(i) for i in ids))
        self.assertEqual({r[0] for r in rows}, {"successful"})
        self.assertEqual({r[2] for r in rows}, {"1"})  # each with its own attempt
        # the rows' last writer (xmin) is the outcome's transaction: fewer than rows
        self.assertLess(len({r[1] for r in rows}), len(rows), "no two outcomes shared a commit")

    def test_4_refused_outcomes_go_one_by_one(self):
        # one outcome the database refuses (a trigger made for the test) in a burst
        # whose outcomes are slowed to share batches: that one stays processing, its
        # request is still answered, and every other is recorded
        with trigger("itest_poison", "UPDATE",
                     SLOW + " IF convert_from(NEW.request_body, 'UTF8') LIKE"
                     " '%\"poison\": true%' THEN RAISE EXCEPTION 'itest: refused'; END IF;"):
            ids, errors = burst("poisoned", threads=16, each=3, path="/sync", poison=(5, 1))
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 16 * 3)
        rows = PG.psql("SELECT status, convert_from(request_body, 'UTF8') LIKE"
                       " '%%\"poison\": true%%' FROM transactions"
                       " WHERE id IN (%s)" % ",".join(str(i) for i in ids))
        self.assertEqual(sorted((r[0], r[1]) for r in rows),
                         sorted([("processing", "t")] + [("successful", "f")] * (16 * 3 - 1)))
        self.assertIn("outcome could not be recorded", HB.log_text())


if __name__ == "__main__":
    unittest.main()
