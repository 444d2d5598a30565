"""The aggregate stage end to end: stock events posted to hibus become monthly stock
figures at the DHIS2 simulator once each month has closed, through the channel's
mapping, quality rules and dhis2 route.

"Simulated time" is the events' own dates: the test runs on a day in the present,
so months in the past have closed (they are sent at the next look, aggregate.every
1s) and the present month has not. Every expected figure below is worked out by
hand in the comment above it.
"""

import datetime
import json
import threading
import time
import unittest

import harness
from harness import DHIS2Sim, dv, sort_values

PASSWORD = "lmis-aggregate-secret"
AUTH = ("lmis-national", PASSWORD)
FAC = "FAC-0042"
OU = DHIS2Sim.ORG_UNITS[FAC]

# OpenLMIS ids (the UUIDs of openlmis-stockmanagement's demo data where it has them)
OL_FACILITY = "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce"
OL_PROGRAM = "dce17f2e-af3e-40ad-8e00-3496adef44c3"
OL_ORDERABLE = "23819693-0670-4c4b-b400-28e009b0d8ff"
DAMAGE = "5b09202e-b8a7-4f77-9e0e-8156f8efc613"       # DEBIT, counted as a loss here
CLINIC_RETURN = "279d55bd-42e3-438c-a63d-9c021b185dae"  # CREDIT adjustment

QUALITY = ["non_negative", "required_measures",
           {"rule": "balance", "tolerance": 0, "action": "reject"}]

PG = SIM = HB = HB2 = None

# aggregate.by_reason: AMOX250's losses and adjustments by reason, mapped by rows of the
# items CSV (a data element of their own, the reason's category option combo)
REASONS_CSV = "item,measure,data_element,category_option_combo\n" + "".join(
    "AMOX250,%s:%s,%s,%s\n" % (m, r, DHIS2Sim.BY_REASON_DATA_ELEMENTS[m], DHIS2Sim.REASONS[r])
    for m, r in [("losses", "Expired"), ("losses", "Damaged"),
                 ("adjustments", "Found in store")])


def event(eid, date, kind, quantity, commodity="AMOX250", facility=FAC, reason=None):
    e = {"id": eid, "facility": facility, "commodity": commodity, "date": date, "kind": kind,
         "quantity": quantity}
    if reason:
        e["reason"] = reason
    return e


def setUpModule():
    global PG, SIM, HB, HB2
    PG = harness.PgCluster().start()
    # Neither the database's time zone nor hibus's may move an event to another day:
    # only the channel's aggregate.timezone (Nairobi, UTC+3) does. Kiritimati is UTC+14.
    PG.psql("ALTER DATABASE postgres SET timezone TO 'Pacific/Kiritimati'")
    SIM = harness.DHIS2Sim().start()
    olmis = harness.mapping_doc(org_units={OL_FACILITY: DHIS2Sim.ORG_UNITS["FAC-0043"]},
                                items={OL_ORDERABLE: {"data_element":
                                                      DHIS2Sim.DATA_ELEMENTS["ORS1L"]}})
    events = {"name": "events", "priority": 10, "mode": "async",
              "match": {"path": "/events", "methods": ["POST"]},
              "allow": {"roles": ["lmis"]},
              "transform": {"reader": "stock-event", "mapping": "agg", "quality": QUALITY},
              "aggregate": {"close_after": "1s", "timezone": "Africa/Nairobi"},
              "routes": [harness.sim_route(SIM)]}
    openlmis = {"name": "openlmis-events", "priority": 10,
                "match": {"path": "/api/stockEvents", "methods": ["POST"]},
                "allow": {"roles": ["lmis"]},
                "transform": {"reader": "openlmis-stock-event", "mapping": "olmis",
                              "quality": QUALITY},
                "aggregate": {"period_type": "Monthly", "reasons": {
                    DAMAGE: {"name": "Damage", "type": "debit", "counts_as": "loss"},
                    CLINIC_RETURN: {"name": "Clinic return", "type": "credit"}}},
                "routes": [harness.sim_route(SIM)]}
    by_reason = dict(events, name="by-reason", match={"path": "/reasons", "methods": ["POST"]},
                     transform=dict(events["transform"], mapping="reasons"),
                     aggregate=dict(events["aggregate"], by_reason=True))
    reasons = dict(harness.mapping_doc(), items_csv="reasons-items.csv")
    # facilities no mapping knows (kept under unmapped: skip), events in years to come:
    # stored, never sent, and no other test's facility touched
    concurrent = dict(events, name="concurrent", unmapped="skip",
                      match={"path": "/concurrent", "methods": ["POST"]})
    # quiet_periods: send: the months after a facility's last event are sent as they close
    quiet = dict(events, name="quiet", match={"path": "/quiet", "methods": ["POST"]},
                 aggregate=dict(events["aggregate"], quiet_periods="send"))
    HB = harness.Hibus(PG.url, clients=[harness.client("lmis-national", ["lmis"], PASSWORD)],
                       channels=[events, openlmis, by_reason, concurrent, quiet],
                       settings={"mappings": "mappings", "aggregate": {"every": "1s"},
                                 "delivery": {"workers": 2}},
                       files={"mappings/agg.yaml": harness.mapping_doc(),
                              "mappings/olmis.yaml": olmis,
                              "mappings/reasons.yaml": reasons,
                              "mappings/reasons-items.csv": REASONS_CSV},
                       env={"TZ": "America/Lima"})
    HB.start()
    # a second process on the same database: each period must still be sent once
    HB2 = HB.clone("hibus-b")
    HB2.start()


def tearDownModule():
    harness.stop_all(HB2, HB, SIM, PG)


def post(path, body, hb=None):
    return (hb or HB).request("POST", path, body=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"}, auth=AUTH)


def stock_values(ou, pe, de, figures):
    return sort_values([dv(de, pe, ou, DHIS2Sim.MEASURES[m], str(v))
                        for m, v in figures.items()])


def sim_values(pe, ou=OU):
    return [v for v in SIM.values() if v["period"] == pe and v["orgUnit"] == ou]


def wait_values(pe, want, ou=OU, timeout=30):
    harness.wait_until(lambda: sim_values(pe, ou) == want, timeout=timeout,
                       what="the simulator to hold %s's figures: %r\nit has %r\nhibus log:\n%s"
                       % (pe, want, sim_values(pe, ou), HB.log_tail(40)))


def aggregate_txs(facility, period):
    return PG.rows("SELECT id, status, request_headers AS headers FROM transactions"
                   " WHERE path = 'aggregate:%s/%s' ORDER BY id" % (facility, period))


def show(*args, channel="events"):
    return HB.cli("aggregate", "show", "-c", HB.config_path, "--channel", channel, *args)


class AggregateTest(harness.TestCase):

    def test_1_a_month_of_events_becomes_monthly_figures(self):
        """Events of September and October, posted in four batches as the days pass,
        and two in the current month (not sent: the month has not closed)."""
        batches = [
            [event("s1", "2026-09-28", "receipt", 100)],
            [event("o1", "2026-10-03", "issue", 60),
             event("o2", "2026-10-10", "issue", 40)],
            [event("o3", "2026-10-20", "receipt", 50),
             event("o4", "2026-10-22", "loss", 2, reason="Expired")],
            [event("o5", "2026-10-25", "count", 45),
             event("o6", "2026-10-28", "adjustment", 3, reason="Found in store")],
        ]
        today = datetime.date.today()
        now_batch = [event("d1", today.isoformat(), "receipt", 5),
                     event("d2", today.isoformat(), "issue", 1)]
        for b in batches + [now_batch]:
            r = post("/events", {"events": b})
            self.assertEqual(r.status, 202, r.body)
        de = DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        # September: 30 days, nothing until a receipt of 100 on the 28th: days 1-27
        # end at 0 (27 stock-out days)
        wait_values("202609", stock_values(OU, "202609", de, {
            "opening_balance": 0, "received": 100, "consumed": 0, "losses": 0,
            "adjustments": 0, "stock_on_hand": 100, "stockout_days": 27}))
        # October: opening 100; -60 (3rd) -40 (10th) = 0 until +50 on the 20th:
        # days 10..19 at zero = 10 stock-out days; -2 lost (22nd) -> 48; counted 45
        # on the 25th (-3 adjustment); +3 adjustment on the 28th -> 48.
        # 100 + 50 - 100 - 2 + 0 = 48
        wait_values("202610", stock_values(OU, "202610", de, {
            "opening_balance": 100, "received": 50, "consumed": 100, "losses": 2,
            "adjustments": 0, "stock_on_hand": 48, "stockout_days": 10}))
        # November has no event, but December (this month) has: between two months
        # with events, a month without any is a month of figures too, opening and
        # closing at October's 48 (sent as it has closed)
        wait_values("202611", stock_values(OU, "202611", de, {
            "opening_balance": 48, "received": 0, "consumed": 0, "losses": 0,
            "adjustments": 0, "stock_on_hand": 48, "stockout_days": 0}))
        # the current month has not closed: nothing for it, at either process
        time.sleep(2.5)
        pe_now = today.strftime("%Y%m")
        self.assertEqual(sim_values(pe_now), [])
        self.assertEqual(len(aggregate_txs(FAC, "202610")), 1, "sent once by two processes")
        self.assertEqual(len(aggregate_txs(FAC, "202609")), 1)
        self.assertEqual(aggregate_txs(FAC, pe_now), [])
        out = HB.cli("aggregate", "show", "-c", HB.config_path, "--facility", FAC, "--period",
                     pe_now)
        self.assertEqual(out.returncode, 2)
        self.assertIn("5 channels have aggregate:; say which with --channel", out.stderr)
        out = show("--facility", FAC, "--period", "2026Q4")
        self.assertEqual(out.returncode, 2)
        self.assertIn("is not a Monthly DHIS2 period of channel events", out.stderr)
        out = show("--facility", FAC, "--period", pe_now)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("sent: not yet", out.stdout)

        # aggregate show explains every figure
        out = show("--facility", FAC, "--period", "202610", "--commodity", "AMOX250")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("opening_balance 100  received 50  consumed 100  losses 2  adjustments 0"
                      "  stock_on_hand 48  stockout_days 10", out.stdout)
        self.assertRegex(out.stdout, r"2026-10-25\s+count\s+45\s+adjustments\s+-3\s+45\s+o5")
        self.assertRegex(out.stdout, r"2026-09-28\s+receipt\s+100\s+\(earlier period\)")
        self.assertRegex(out.stdout, r"sent: transaction \d+ at .* \(successful\), 1 time\n")
        js = json.loads(show("--facility", FAC, "--period", "2026-10-15", "--json").stdout)
        self.assertEqual(js["period"], "202610")
        amox = [c for c in js["commodities"] if c["commodity"] == "AMOX250"][0]
        self.assertEqual(len(amox["events"]), 7)
        self.assertEqual(amox["events"][5]["measure"], "adjustments")
        self.assertEqual(amox["events"][5]["amount"], -3)
        self.assertEqual(js["sent"]["status"], "successful")

    def test_2_duplicates_and_a_late_event(self):
        """The same batch sent again is stored once and sends nothing; a late event
        for a month already sent sends it again as a correction, and the next month
        (whose opening balance moved) too."""
        first = [event("l1", "2026-07-01", "receipt", 10, facility="FAC-0100"),
                 event("l2", "2026-08-05", "issue", 4, facility="FAC-0100")]
        r = post("/events", {"events": first})
        self.assertEqual(r.status, 202, r.body)
        ou = DHIS2Sim.ORG_UNITS["FAC-0100"]
        de = DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        # July: +10 on the 1st; August: 10 - 4 = 6
        wait_values("202607", stock_values(ou, "202607", de, {
            "opening_balance": 0, "received": 10, "consumed": 0, "losses": 0,
            "adjustments": 0, "stock_on_hand": 10, "stockout_days": 0}), ou=ou)
        wait_values("202608", stock_values(ou, "202608", de, {
            "opening_balance": 10, "received": 0, "consumed": 4, "losses": 0,
            "adjustments": 0, "stock_on_hand": 6, "stockout_days": 0}), ou=ou)
        july = aggregate_txs("FAC-0100", "202607")
        self.assertEqual(len(july), 1)

        again = post("/events", {"events": first}, hb=HB2)
        self.assertEqual(again.status, 202, again.body)
        tx = int(again.headers["x-hibus-transaction"])
        harness.wait_until(lambda: HB.tx_json(tx)["status"] == "successful", what="stored")
        att = HB.tx_json(tx)["attempts"][0]
        self.assertEqual(att["route"], "aggregate")
        self.assertEqual(att["details"]["stored"], 0)
        self.assertEqual(att["details"]["duplicates"], 2)
        time.sleep(2.5)
        self.assertEqual(len(aggregate_txs("FAC-0100", "202607")), 1)

        # late: 5 more received on 31 July, 23:30 in Nairobi (20:30 UTC): July
        # becomes 15 and August opens at 15, ends at 11. An event at 22:30 UTC on 31
        # July is already 1 August in Nairobi: August received 2 -> 13.
        late = [event("l3", "2026-07-31T20:30:00Z", "receipt", 5, facility="FAC-0100"),
                event("l4", "2026-07-31T22:30:00Z", "receipt", 2, facility="FAC-0100")]
        r = post("/events", {"events": late})
        self.assertEqual(r.status, 202, r.body)
        wait_values("202607", stock_values(ou, "202607", de, {
            "opening_balance": 0, "received": 15, "consumed": 0, "losses": 0,
            "adjustments": 0, "stock_on_hand": 15, "stockout_days": 0}), ou=ou)
        wait_values("202608", stock_values(ou, "202608", de, {
            "opening_balance": 15, "received": 2, "consumed": 4, "losses": 0,
            "adjustments": 0, "stock_on_hand": 13, "stockout_days": 0}), ou=ou)
        july = aggregate_txs("FAC-0100", "202607")
        self.assertEqual(len(july), 2)
        headers = july[1]["headers"]
        self.assertEqual(headers["x-hibus-correction-of"], str(july[0]["id"]))
        self.assertIn("correction of transaction %s" % july[0]["id"],
                      headers["x-hibus-aggregate"])
        js = json.loads(show("--facility", "FAC-0100", "--period", "202607", "--json").stdout)
        self.assertEqual(js["sent"]["times"], 2)
        self.assertEqual(js["sent"]["late_events"], 1)
        dates = [e["date"] for e in js["commodities"][0]["events"]]
        self.assertEqual(dates, ["2026-07-01", "2026-07-31"])

    def test_3_bad_events_are_refused_with_every_problem(self):
        r = post("/events", {"events": [
            event("x1", "2026-10-03T10:00:00", "issue", 1),
            event("x2", "2026-10-03", "issue", 1, facility="FAC-9999"),
            event("x3", "2026-10-03", "issue", 1, commodity="NOPE")]})
        self.assertEqual(r.status, 422, r.body)
        msgs = [p["message"] for p in r.json()["problems"]]
        self.assertTrue(any("with its offset" in m for m in msgs), msgs)
        r = post("/events", {"events": [
            event("x2", "2026-10-03", "issue", 1, facility="FAC-9999"),
            event("x3", "2026-10-03", "issue", 1, commodity="NOPE")]})
        self.assertEqual(r.status, 422, r.body)
        probs = r.json()["problems"]
        self.assertEqual({(p["kind"], p["code"]) for p in probs},
                         {("org_unit", "FAC-9999"), ("item", "NOPE")}, probs)
        self.assertEqual(PG.scalar("SELECT count(*) FROM stock_events WHERE source_id"
                                   " IN ('x1', 'x2', 'x3')"), "0")

    def test_3b_map_shows_the_events_it_would_store(self):
        body = json.dumps({"events": [event("m1", "2026-10-03", "receipt", 5),
                                      event("m2", "2026-10-04", "loss", 1, reason="Expired")]})
        r = HB.cli("map", "-c", HB.config_path, "--channel", "events", input=body)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# 2 stock events, stored when received; each closed Monthly period",
                      r.stdout)
        self.assertRegex(r.stdout, r"FAC-0042\s+AMOX250\s+m2\s+2026-10-04\s+loss\s+1\s+Expired")
        js = json.loads(HB.cli("map", "-c", HB.config_path, "--channel", "events", "--json",
                               input=body).stdout)
        self.assertEqual([e["kind"] for e in js["events"]], ["receipt", "loss"])
        self.assertEqual(js["routes"], [])
        # map stores nothing
        self.assertEqual(PG.scalar("SELECT count(*) FROM stock_events WHERE source_id = 'm1'"),
                         "0")

    def test_4_openlmis_stock_event(self):
        """An OpenLMIS v3 stock event on a sync channel: the answer says what was
        stored. September: +100 received (source), -40 issued (destination), -3
        Damage (a loss), a physical inventory of 60 with +2 Clinic return: the
        records said 57 + 2 = 59, so +1 more found: adjustments 3, stock on hand 60."""
        body = {"facilityId": OL_FACILITY, "programId": OL_PROGRAM, "signature": "nurse",
                "documentNumber": "PI-2026-09-1", "lineItems": [
                    {"orderableId": OL_ORDERABLE, "quantity": 100,
                     "occurredDate": "2026-09-02", "sourceId": "9f2cb5c8-0000-4bfb-a1b6-0a"},
                    {"orderableId": OL_ORDERABLE, "quantity": 40, "occurredDate": "2026-09-09",
                     "destinationId": "0bd3cd9c-0000-4bc4-a4ad-0b"},
                    {"orderableId": OL_ORDERABLE, "quantity": 3, "occurredDate": "2026-09-12",
                     "reasonId": DAMAGE},
                    {"orderableId": OL_ORDERABLE, "quantity": 60, "occurredDate": "2026-09-30",
                     "stockAdjustments": [{"reasonId": CLINIC_RETURN, "quantity": 2}]}]}
        r = post("/api/stockEvents", body)
        self.assertEqual(r.status, 200, r.body)
        agg = r.json()["routes"][0]
        self.assertEqual(agg["route"], "aggregate")
        self.assertEqual(agg["aggregate"]["stored"], 5)
        ou = DHIS2Sim.ORG_UNITS["FAC-0043"]
        de = DHIS2Sim.DATA_ELEMENTS["ORS1L"]
        wait_values("202609", stock_values(ou, "202609", de, {
            "opening_balance": 0, "received": 100, "consumed": 40, "losses": 3,
            "adjustments": 3, "stock_on_hand": 60, "stockout_days": 1}), ou=ou)
        # the same event again: stored once
        r = post("/api/stockEvents", body)
        self.assertEqual(r.json()["routes"][0]["aggregate"]["duplicates"], 5)
        # a reason the channel does not know is refused, naming it
        bad = dict(body, documentNumber="PI-2")
        bad["lineItems"] = [{"orderableId": OL_ORDERABLE, "quantity": 1,
                             "occurredDate": "2026-09-03", "reasonId": "no-such-reason"}]
        r = post("/api/stockEvents", bad)
        self.assertEqual(r.status, 422, r.body)
        self.assertIn("aggregate.reasons", r.json()["problems"][0]["message"])

    def test_5_losses_and_adjustments_by_reason(self):
        """aggregate.by_reason: May 2026 at FAC-0043, AMOX250. +100 received on the 2nd;
        lost 4 Expired (6th), 2 Damaged (9th), 1 Expired (12th), 3 without a reason
        (15th): 90; counted 88 on the 20th (-2). Totals: losses 10, adjustments -2,
        88 on hand, 1 stock-out day (the 1st). By reason: Expired 5, Damaged 2; the 3
        without a reason and the count's -2 are in the totals only."""
        fac = "FAC-0043"
        ou = DHIS2Sim.ORG_UNITS[fac]
        de = DHIS2Sim.DATA_ELEMENTS["AMOX250"]
        de_loss = DHIS2Sim.BY_REASON_DATA_ELEMENTS["losses"]
        de_adj = DHIS2Sim.BY_REASON_DATA_ELEMENTS["adjustments"]
        r = post("/reasons", {"events": [
            event("r1", "2026-05-02", "receipt", 100, facility=fac),
            event("r2", "2026-05-06", "loss", 4, facility=fac, reason="Expired"),
            event("r3", "2026-05-09", "loss", 2, facility=fac, reason="Damaged"),
            event("r4", "2026-05-12", "loss", 1, facility=fac, reason="Expired"),
            event("r5", "2026-05-15", "loss", 3, facility=fac),
            event("r6", "2026-05-20", "count", 88, facility=fac, reason="Stock take")]})
        self.assertEqual(r.status, 202, r.body)
        totals = stock_values(ou, "202605", de, {
            "opening_balance": 0, "received": 100, "consumed": 0, "losses": 10,
            "adjustments": -2, "stock_on_hand": 88, "stockout_days": 1})
        wait_values("202605", sort_values(totals + [
            dv(de_loss, "202605", ou, DHIS2Sim.REASONS["Expired"], "5"),
            dv(de_loss, "202605", ou, DHIS2Sim.REASONS["Damaged"], "2")]), ou=ou)
        sent = aggregate_txs(fac, "202605")
        self.assertEqual(len(sent), 1)

        # a reason the mapping has no row for is refused when posted (unmapped: reject),
        # not weeks later when the month is sent; a count's reason goes nowhere
        r = post("/reasons", {"events": [
            event("r7", "2026-05-21", "loss", 1, facility=fac, reason="Stolen")]})
        self.assertEqual(r.status, 422, r.body)
        probs = r.json()["problems"]
        self.assertEqual([(p["kind"], p["code"], p["measure"]) for p in probs],
                         [("item", "AMOX250", "losses:Stolen")], probs)
        self.assertIn("aggregate.by_reason", probs[0]["message"])

        # late: +2 Found in store on the 18th, before the count, which now finds 92
        # against 88 (-4): every total stays (adjustments 2 - 4 = -2), only the
        # breakdown moved, and that alone sends the month again, as a correction
        r = post("/reasons", {"events": [
            event("r8", "2026-05-18", "adjustment", 2, facility=fac, reason="Found in store")]})
        self.assertEqual(r.status, 202, r.body)
        wait_values("202605", sort_values(totals + [
            dv(de_loss, "202605", ou, DHIS2Sim.REASONS["Expired"], "5"),
            dv(de_loss, "202605", ou, DHIS2Sim.REASONS["Damaged"], "2"),
            dv(de_adj, "202605", ou, DHIS2Sim.REASONS["Found in store"], "2")]), ou=ou)
        sent = aggregate_txs(fac, "202605")
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[1]["headers"]["x-hibus-correction-of"], str(sent[0]["id"]))

        out = show("--facility", fac, "--period", "202605", channel="by-reason")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("opening_balance 0  received 100  consumed 0  losses 10  adjustments -2"
                      "  stock_on_hand 88  stockout_days 1\n"
                      "  losses by reason  Damaged 2  Expired 5  (no reason 3)\n"
                      "  adjustments by reason  Found in store 2  (no reason -4)\n", out.stdout)
        js = json.loads(show("--facility", fac, "--period", "202605", "--json",
                             channel="by-reason").stdout)
        f = js["commodities"][0]["figures"]
        self.assertEqual(f["losses_by_reason"], {"Damaged": 2, "Expired": 5})
        self.assertEqual(f["adjustments_by_reason"], {"Found in store": 2})

    def test_6_concurrent_batches_of_the_same_facilities(self):
        """Batches naming the same facilities in opposite orders, stored at once by
        four delivery workers in two processes: every event stored, no deadlock
        (PostgreSQL breaks one after deadlock_timeout by failing a batch; stores of a
        facility take turns instead)."""
        facilities = ["CC-%d" % i for i in range(1, 6)]
        BATCHES = 40
        batches = []
        for b in range(BATCHES):
            order = facilities if b % 2 == 0 else facilities[::-1]
            batches.append({"events": [
                event("cc-%d-%s-%d-%d" % (b, f, m, d), "2031-%02d-%02d" % (m, d), "receipt", 1,
                      facility=f) for f in order for m in range(1, 13) for d in range(1, 11)]})
        # and batches of more facilities than a store locks one by one (it locks the
        # channel instead), among them the same five
        wide = facilities + ["CW-%d" % i for i in range(36)]
        for b in range(4):
            order = wide if b % 2 == 0 else wide[::-1]
            batches.insert(b * 10, {"events": [
                event("cw-%d-%s-%d" % (b, f, m), "2031-%02d-28" % m, "issue", 1, facility=f)
                for f in order for m in range(1, 13)]})
        results = []

        def send(body, hb):
            results.append(post("/concurrent", body, hb=hb))
        threads = [threading.Thread(target=send, args=(b, HB if i % 2 else HB2))
                   for i, b in enumerate(batches)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in results], [202] * len(batches),
                         [r.body[:200] for r in results if r.status != 202])
        txs = ",".join(r.headers["x-hibus-transaction"] for r in results)
        harness.wait_until(
            lambda: PG.count("transactions", "id IN (%s) AND status IN ('queued', "
                             "'processing')" % txs) == 0, timeout=60, what="the batches stored")
        self.assertEqual(PG.count("transactions", "id IN (%s) AND status = 'successful'"
                                  % txs), len(batches))
        self.assertEqual(PG.count("stock_events", "channel = 'concurrent'"),
                         BATCHES * 5 * 120 + 4 * 41 * 12)
        self.assertEqual(PG.count("aggregate_periods", "channel = 'concurrent'"), 41 * 12)
        with open(PG.logfile, errors="replace") as f:
            deadlocks = f.read().count("ERROR:  deadlock detected")
        self.assertEqual(deadlocks, 0, "PostgreSQL broke deadlocks between the batches")

    def test_7_quiet_periods_are_sent_as_they_close(self):
        """quiet_periods: send. ZINC20 at FAC-0100 (no other test's commodity there):
        30 received on 10 January 2025 and 5 issued on the 20th, then nothing. January
        is 0 + 30 - 5 = 25 with 9 stock-out days; every month after it to November 2026 (the last closed one)
        is sent too, as a month without movement: opening 25, on hand 25."""
        ou = DHIS2Sim.ORG_UNITS["FAC-0100"]
        de = DHIS2Sim.DATA_ELEMENTS["ZINC20"]
        r = post("/quiet", {"events": [
            event("q1", "2025-01-10", "receipt", 30, commodity="ZINC20", facility="FAC-0100"),
            event("q2", "2025-01-20", "issue", 5, commodity="ZINC20", facility="FAC-0100")]})
        self.assertEqual(r.status, 202, r.body)
        still = {"opening_balance": 25, "received": 0, "consumed": 0, "losses": 0,
                 "adjustments": 0, "stock_on_hand": 25, "stockout_days": 0}

        def zinc(pe):
            return [v for v in sim_values(pe, ou) if v["dataElement"] == de]
        # (the 1st to the 9th, before the first receipt, are stock-out days)
        january = dict(still, opening_balance=0, received=30, consumed=5, stockout_days=9)
        harness.wait_until(lambda: zinc("202501") == stock_values(ou, "202501", de, january)
                           and zinc("202611") == stock_values(ou, "202611", de, still),
                           timeout=30, what="January 2025 and November 2026 at the simulator")
        self.assertEqual(zinc("202502"), stock_values(ou, "202502", de, still))
        months = PG.rows("SELECT period FROM aggregate_periods WHERE channel = 'quiet'"
                         " ORDER BY period")
        self.assertEqual([m["period"] for m in months],
                         ["2025%02d" % m for m in range(1, 13)]
                         + ["2026%02d" % m for m in range(1, 12)])
        # the present month has not closed: not sent, no row yet
        self.assertEqual(zinc("202612"), [])


if __name__ == "__main__":
    unittest.main()
