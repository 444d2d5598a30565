/* hibus console: the admin API (docs/admin-api.md) in a browser. Plain JavaScript,
 * no build step; every piece of data goes into the page as text, never as HTML. */
"use strict";

const STATUSES = ["queued", "processing", "successful", "completed",
  "completed_with_errors", "failed", "rejected"];
const main = document.getElementById("main");
/* Absolute URLs on the origin: a page opened as http://user:password@host/ would
 * otherwise resolve "/api/..." with the credentials in it, which fetch refuses. */
const origin = location.origin;
let me = null;
let view = null; /* the view shown: its name and, for the list, its rows by id */

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  const r = await fetch(origin + path, Object.assign({ credentials: "same-origin",
    headers: { Accept: "application/json" } }, options || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const why = body && body.error ? body.error + (body.details && body.details.length ?
      ": " + body.details.join("; ") : "") : "HTTP " + r.status;
    throw new Error(why);
  }
  return body;
}

function statusBadge(s) {
  return el("span", { class: "status " + s }, s);
}

function ms(v) {
  return v === null || v === undefined ? "-" : v.toFixed(1) + " ms";
}

function show(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

function fail(e) {
  show(el("p", { class: "error" }, "Could not load: " + e.message));
}

/* ------------------------------------------------------------ transactions */

function txRow(t, fresh) {
  return el("tr", { "data-id": t.id, class: fresh ? "fresh" : null },
    el("td", {}, t.received_at || t.time || ""),
    el("td", { class: "num" }, el("a", { href: "#/tx/" + t.id }, t.id)),
    el("td", {}, t.channel),
    el("td", {}, t.client || "-"),
    el("td", { class: "status-cell" }, statusBadge(t.status)),
    el("td", { class: "num code" }, t.response_status === null || t.response_status === undefined
      ? "-" : t.response_status),
    el("td", { class: "num duration" }, ms(t.duration_ms)),
    el("td", {}, t.facility || "-"),
    el("td", {}, t.period || "-"));
}

function filterQuery(form) {
  const q = new URLSearchParams();
  for (const name of ["channel", "status", "facility", "period", "since"]) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  return q;
}

async function showList() {
  const channels = (await api("/api/channels")).channels.map((c) => c.name);
  const form = el("form", { class: "filters", id: "filters" },
    el("select", { name: "channel" }, el("option", { value: "" }, "every channel"),
      ...channels.map((c) => el("option", { value: c }, c))),
    el("select", { name: "status" }, el("option", { value: "" }, "any status"),
      ...STATUSES.map((s) => el("option", { value: s }, s)),
      el("option", { value: "failed,rejected,completed_with_errors" }, "any problem")),
    el("input", { name: "facility", placeholder: "facility" }),
    el("input", { name: "period", placeholder: "period, e.g. 202611", size: 14 }),
    el("input", { name: "since", placeholder: "since, e.g. 2026-11-01", size: 16 }),
    el("button", { type: "submit", class: "primary" }, "Search"));
  const body = el("tbody", { id: "tx-rows" });
  const more = el("button", { type: "button", id: "more", hidden: "" }, "Older");
  const table = el("table", { id: "tx-table" },
    el("thead", {}, el("tr", {}, ...["Received", "ID", "Channel", "Client", "Status", "Code",
      "Duration", "Facility", "Period"].map((h) => el("th", {}, h)))), body);
  view = { name: "list", form, body, filters: new URLSearchParams(), rows: new Map() };
  async function load(before) {
    const q = new URLSearchParams(view.filters);
    if (before) q.set("before", before);
    const page = await api("/api/transactions?" + q.toString());
    for (const t of page.transactions) {
      const row = txRow(t, false);
      view.rows.set(t.id, row);
      body.append(row);
    }
    more.hidden = page.next_before === null;
    more.onclick = () => load(page.next_before).catch(fail);
    if (!body.children.length)
      body.append(el("tr", { class: "empty" }, el("td", { colspan: 9, class: "muted" },
        "No transactions match.")));
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    view.filters = filterQuery(form);
    body.replaceChildren();
    view.rows.clear();
    load().catch(fail);
  });
  show(el("h2", {}, "Transactions, newest first"), form, table, el("p", {}, more));
  await load();
}

/* A change from /api/events: a row updated in place, or a new one on top when it
 * matches the filters of the list shown. */
function onEvent(t) {
  if (!view || view.name !== "list") return;
  const row = view.rows.get(t.id);
  if (row) {
    row.querySelector(".status-cell").replaceChildren(statusBadge(t.status));
    row.querySelector(".code").textContent = t.response_status === null ? "-" : t.response_status;
    row.querySelector(".duration").textContent = ms(t.duration_ms);
    return;
  }
  const f = view.filters;
  if (f.get("channel") && f.get("channel") !== t.channel) return;
  if (f.get("status") && !f.get("status").split(",").includes(t.status)) return;
  if (f.get("facility") || f.get("period") || f.get("since")) return; /* not in the event */
  const empty = view.body.querySelector("tr.empty");
  if (empty) empty.remove();
  const r = txRow(t, true);
  view.rows.set(t.id, r);
  view.body.prepend(r);
}

function startEvents() {
  const live = document.getElementById("live");
  const es = new EventSource(origin + "/api/events");
  es.onopen = () => { live.className = "live on"; live.textContent = "live"; };
  es.onerror = () => { live.className = "live off"; live.textContent = "reconnecting"; };
  es.addEventListener("transaction", (ev) => onEvent(JSON.parse(ev.data)));
}

/* ------------------------------------------------------------ one transaction */

function details(title, text) {
  if (text === null || text === undefined) return null;
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ }
  return el("details", {}, el("summary", {}, title), el("pre", {}, shown));
}

function importSummary(d) {
  if (!d || d.imported === undefined) return null;
  const conflicts = d.conflicts || [];
  return el("div", { class: "import" },
    el("p", {}, "DHIS2 import ", statusBadge(String(d.status || "").toLowerCase() || "?"),
      " imported " + d.imported + ", updated " + d.updated + ", ignored " + d.ignored +
      ", deleted " + d.deleted),
    conflicts.length ? el("ul", { class: "conflicts" }, ...conflicts.map((c) =>
      el("li", {}, (c.errorCode ? c.errorCode + " " : "") + (c.object ? c.object + ": " : "") +
        (c.value || "")))) : null);
}

async function showTransaction(id) {
  const t = await api("/api/transactions/" + id);
  view = { name: "tx", id };
  const canRerun = me && (me.role === "operator" || me.role === "admin") &&
    t.status !== "queued" && t.status !== "processing";
  const msg = el("div", { id: "rerun-result" });
  const rerun = canRerun ? el("button", { class: "primary", id: "rerun", onclick: async () => {
    try {
      const r = await api("/api/transactions/" + id + "/rerun", { method: "POST" });
      msg.replaceChildren(el("p", { class: "notice" }, r.queued
        ? "Re-queued: it is delivered again shortly; its new attempts are added below."
        : "Not re-queued: a later report of the same facility and period was delivered."));
    } catch (e) { msg.replaceChildren(el("p", { class: "error" }, e.message)); }
  } }, "Re-run") : null;
  const problems = t.problems && (t.problems.problems || []).length
    ? el("ul", { class: "conflicts" }, ...t.problems.problems.map((p) => el("li", {}, p.message)))
    : null;
  const attempts = el("table", { id: "attempts" },
    el("thead", {}, el("tr", {}, ...["Route", "#", "Started", "Code", "Duration", "Error"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, ...(t.attempts || []).map((a) => [
      el("tr", {}, el("td", {}, a.route), el("td", { class: "num" }, a.attempt),
        el("td", {}, a.started_at), el("td", { class: "num" }, a.status_code === null
          ? "-" : a.status_code), el("td", { class: "num" }, ms(a.duration_ms)),
        el("td", { class: "error" }, a.error || "")),
      a.details && a.details.imported !== undefined
        ? el("tr", {}, el("td", { colspan: 6 }, importSummary(a.details))) : null,
    ]).flat().filter((x) => x)));
  show(el("h2", {}, "Transaction " + t.id + " ", statusBadge(t.status)),
    el("dl", {},
      el("dt", {}, "Channel"), el("dd", {}, t.channel),
      el("dt", {}, "Client"), el("dd", {}, t.client || "-"),
      el("dt", {}, "Request"), el("dd", {}, t.method + " " + t.path),
      el("dt", {}, "Request id"), el("dd", {}, t.request_id),
      el("dt", {}, "Received"), el("dd", {}, t.received_at),
      el("dt", {}, "Finished"), el("dd", {}, t.finished_at || "-"),
      el("dt", {}, "Answered"), el("dd", {}, t.response_status === null ? "-"
        : t.response_status),
      el("dt", {}, "Error"), el("dd", { class: "error" }, t.error || "-")),
    problems ? el("h2", {}, "Problems") : null, problems,
    el("p", {}, rerun), msg,
    el("h2", {}, "Delivery attempts"), attempts,
    t.bodies ? el("p", { class: "muted" }, "Bodies " + t.bodies + ".") : null,
    details("Request body", t.request_body), details("Answer body", t.response_body));
}

/* ------------------------------------------------------------ channels */

function chart(hours, series) {
  const w = 360, h = 90, bw = w / hours;
  const byHour = new Map(series.map((s) => [s.hour.slice(0, 13), s]));
  const now = new Date();
  const bars = [];
  let max = 1;
  const slots = [];
  for (let i = hours - 1; i >= 0; i--) {
    const d = new Date(now.getTime() - i * 3600e3);
    const key = d.toISOString().slice(0, 13);
    const s = byHour.get(key) || { received: 0, failed: 0 };
    slots.push(s);
    max = Math.max(max, s.received);
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 " + w + " " + (h + 14));
  svg.setAttribute("width", w);
  slots.forEach((s, i) => {
    for (const [cls, v] of [["received", s.received], ["failed", s.failed]]) {
      if (!v) continue;
      const r = document.createElementNS(ns, "rect");
      const bh = Math.max(1, (v / max) * h);
      r.setAttribute("class", cls);
      r.setAttribute("x", i * bw + 1);
      r.setAttribute("y", h - bh);
      r.setAttribute("width", Math.max(1, bw - 2));
      r.setAttribute("height", bh);
      const title = document.createElementNS(ns, "title");
      title.textContent = v + " " + cls;
      r.append(title);
      bars.push(r);
    }
  });
  svg.append(...bars);
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 0);
  label.setAttribute("y", h + 12);
  label.textContent = hours + " h ago";
  const right = document.createElementNS(ns, "text");
  right.setAttribute("x", w - 24);
  right.setAttribute("y", h + 12);
  right.textContent = "now";
  svg.append(label, right);
  return svg;
}

async function showChannels() {
  const [chs, hours] = await Promise.all([api("/api/channels"),
    api("/api/channels/hours?hours=24")]);
  view = { name: "channels" };
  const cards = chs.channels.map((c) => el("div", { class: "card", "data-channel": c.name },
    el("h3", {}, c.name, " ", el("span", { class: "muted" }, c.mode)),
    el("dl", {},
      el("dt", {}, "Routes"), el("dd", {}, c.routes.join(", ")),
      el("dt", {}, "Last success"), el("dd", {}, c.last_success || "none in 30 days"),
      el("dt", {}, "Last hour"), el("dd", { class: "last-hour" }, c.last_hour.finished +
        " ended, " + c.last_hour.failed + " failed" + (c.last_hour.failure_rate === null ? ""
        : " (" + Math.round(c.last_hour.failure_rate * 100) + "%)")),
      el("dt", {}, "Queue"), el("dd", {}, c.queue.queued + " queued, " + c.queue.processing +
        " in delivery" + (c.queue.queued ? ", oldest " + Math.round(
          c.queue.oldest_queued_seconds) + " s" : ""))),
    chart(24, hours.channels[c.name] || []),
    el("p", { class: "muted" }, "Received per hour (grey), of which failed (red).")));
  show(el("h2", {}, "Channels"), el("div", { class: "grid" }, ...cards));
}

/* ------------------------------------------------------------ unmapped codes */

async function showUnmapped() {
  const u = await api("/api/unmapped?days=30");
  view = { name: "unmapped" };
  const rows = u.codes.map((c) => el("tr", {}, el("td", {}, c.channel), el("td", {}, c.kind),
    el("td", {}, el("code", {}, c.code)), el("td", { class: "num" }, c.transactions),
    el("td", { class: "num" }, el("a", { href: "#/tx/" + c.last_transaction },
      c.last_transaction)), el("td", {}, c.last_seen)));
  show(el("h2", {}, "Codes no mapping maps (last " + u.days + " days)"),
    rows.length ? el("table", { id: "unmapped" }, el("thead", {}, el("tr", {}, ...["Channel",
      "Kind", "Code", "Transactions", "Last", "Last seen"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)) : el("p", { class: "muted" }, "Every code was mapped."));
}

/* ------------------------------------------------------------ routing */

function route() {
  const h = location.hash || "#/";
  const name = h.startsWith("#/tx/") ? "tx" : h === "#/channels" ? "channels"
    : h === "#/unmapped" ? "unmapped" : "list";
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("active", a.dataset.view === name);
  const go = name === "tx" ? showTransaction(h.slice(5)) : name === "channels" ? showChannels()
    : name === "unmapped" ? showUnmapped() : showList();
  go.catch(fail);
}

(async function start() {
  try {
    me = await api("/api/me");
    document.getElementById("me").textContent = (me.name || me.id) + " (" + me.role + ")";
  } catch (e) { fail(e); return; }
  window.addEventListener("hashchange", route);
  startEvents();
  route();
})();
