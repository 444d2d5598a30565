"""Inserts that arrive together are committed together (one pipeline, one commit),
each request still answered only after the commit that holds its row; a batch the
database refuses as a whole is run again one insert at a time (here: the month's
partition is missing, which the single insert makes)."""

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
                                                 mode="async")],
                       settings={"delivery": {"workers": 0}})
    HB.start()


def tearDownModule():
    harness.stop_all(HB, TARGET, PG)


def burst(tag, threads=32, each=6):
    """Posts threads x each requests at once; returns the ids hibus answered."""
    ids, errors = [], []
    lock = threading.Lock()

    def client(t):
        for i in range(each):
            body = json.dumps({"tag": tag, "t": t, "i": i}).encode()
            try:
                r = HB.request("POST", "/async", body=body, auth=AUTH,
                               headers={"Content-Type": "application/json"})
                with lock:
                    if r.status == 202:
                        ids.append(r.json()["id"])
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


class GroupCommitTest(harness.TestCase):

    def test_1_inserts_share_commits(self):
        # each insert takes 20 ms longer (a trigger made for the test), so that the
        # requests of the burst are sure to arrive while one is on its way
        PG.psql("CREATE FUNCTION itest_slow() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;"
                " CREATE TRIGGER itest_slow BEFORE INSERT ON transactions"
                " FOR EACH ROW EXECUTE FUNCTION itest_slow()")
        try:
            ids, errors = burst("share")
        finally:
            PG.psql("DROP TRIGGER itest_slow ON transactions; DROP FUNCTION itest_slow()")
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


if __name__ == "__main__":
    unittest.main()
