// ringtally dashboard: live tallies over Server-Sent Events, aggregates polled every 5 s.
// Plain DOM, no build step. Every value is written with textContent (ids are untrusted text).
"use strict";

const MAX_ROWS = 200;
const DECISIONS = ["PENDING", "APPROVED", "REJECTED", "ESCALATED"];
const tallies = new Map(); // submission_id -> latest tally (highest version)

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// --- tallies ---------------------------------------------------------------------------

function remember(t, fresh) {
  const known = tallies.get(t.submission_id);
  if (known && known.version >= t.version) return false;
  tallies.set(t.submission_id, {
    ...t,
    genre: t.genre ?? known?.genre ?? null,
    epoch: t.epoch ?? known?.epoch ?? null,
    changed: fresh ? Date.now() : (known?.changed ?? 0),
    order: fresh ? Date.now() : (t.updated_at ? Date.parse(t.updated_at) : 0),
  });
  return true;
}

function tallyRow(t) {
  const tr = el("tr", { "data-submission": t.submission_id, "data-version": t.version });
  tr.append(el("td", { class: "submission", title: t.submission_id }, t.submission_id));
  tr.append(el("td", { class: "genre" }, t.genre ?? "?"));
  tr.append(el("td", { class: "epoch" }, t.epoch ?? "?"));
  for (const k of ["approve", "reject", "flag", "escalate"]) {
    tr.append(el("td", { class: k }, t.counts[k]));
  }
  tr.append(el("td", { class: "total" }, t.total));
  tr.append(el("td", { class: `decision ${t.decision}` }, t.decision));
  tr.append(el("td", { class: "version" }, t.version));
  if (Date.now() - t.changed < 1500) tr.classList.add("flash");
  return tr;
}

function renderTallies() {
  const body = document.querySelector("#tallies tbody");
  const rows = [...tallies.values()].sort((a, b) => b.order - a.order).slice(0, MAX_ROWS);
  body.replaceChildren(...rows.map(tallyRow));
  if (!rows.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 10, class: "empty" }, "no tallies yet"));
    body.append(tr);
  }
  renderDecisions();
}

function renderDecisions() {
  const byGenre = new Map();
  for (const t of tallies.values()) {
    const g = t.genre ?? "unknown";
    if (!byGenre.has(g)) byGenre.set(g, Object.fromEntries(DECISIONS.map((d) => [d, 0])));
    byGenre.get(g)[t.decision] += 1;
  }
  const body = document.querySelector("#decisions tbody");
  body.replaceChildren(
    ...[...byGenre.entries()].sort().map(([genre, counts]) => {
      const tr = el("tr", { "data-genre": genre });
      tr.append(el("td", {}, genre));
      for (const d of DECISIONS) tr.append(el("td", { class: `decision ${d}` }, counts[d]));
      tr.append(el("td", {}, DECISIONS.reduce((n, d) => n + counts[d], 0)));
      return tr;
    }),
  );
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; renderTallies(); });
}

// --- live updates ----------------------------------------------------------------------------

function connect() {
  const status = document.getElementById("status");
  const source = new EventSource("/api/v1/tallies/stream");
  source.onopen = () => { status.textContent = "live"; status.className = "status live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "status connecting"; };
  source.addEventListener("tally", (event) => {
    const t = JSON.parse(event.data);
    if (remember(t, true)) scheduleRender();
  });
  return source;
}

// --- aggregates ----------------------------------------------------------------------------

function renderRate(recent) {
  const svg = document.getElementById("rate");
  const ns = "http://www.w3.org/2000/svg";
  const step = recent.bucket_seconds;
  const now = Math.floor(Date.now() / 1000 / step) * step;
  const n = Math.round(600 / step);
  const buckets = new Map(recent.buckets.map((b) => [Math.floor(Date.parse(b.t) / 1000), b]));
  const series = [];
  for (let i = n - 1; i >= 0; i--) {
    const b = buckets.get(now - i * step);
    const rej = b ? Object.values(b.rejections).reduce((x, y) => x + y, 0) : 0;
    series.push({ ballots: (b ? b.ballots : 0) / step, rejections: rej / step });
  }
  const top = Math.max(1, ...series.map((s) => s.ballots + s.rejections));
  const w = 600 / n;
  svg.replaceChildren();
  series.forEach((s, i) => {
    const hb = (s.ballots / top) * 110, hr = (s.rejections / top) * 110;
    for (const [cls, h, y] of [["ballots", hb, 120 - hb], ["rejections", hr, 120 - hb - hr]]) {
      if (h <= 0) continue;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("class", cls);
      r.setAttribute("x", (i * w + 0.5).toFixed(1));
      r.setAttribute("width", Math.max(1, w - 1).toFixed(1));
      r.setAttribute("y", y.toFixed(1));
      r.setAttribute("height", h.toFixed(1));
      svg.append(r);
    }
  });
  const last = series.slice(-7, -1); // the last full minute
  const perSec = last.reduce((x, s) => x + s.ballots + s.rejections, 0) / Math.max(1, last.length);
  document.getElementById("rate-now").textContent =
    `${perSec.toFixed(1)} votes/s over the last minute · peak ${top.toFixed(1)}/s`;
}

function renderReasons(recent) {
  const totals = {};
  for (const b of recent.buckets) {
    for (const [reason, n] of Object.entries(b.rejections)) totals[reason] = (totals[reason] ?? 0) + n;
  }
  const list = document.getElementById("reasons");
  const entries = Object.entries(totals).sort((a, b) => b[1] - a[1]);
  const top = Math.max(1, ...entries.map((e) => e[1]));
  list.replaceChildren(
    ...entries.map(([reason, n]) => {
      const li = el("li", { "data-reason": reason });
      li.append(el("span", { class: "reason" }, reason));
      const bar = el("span", { class: "bar" });
      bar.style.width = `${(100 * n) / top}%`;
      li.append(bar, el("span", { class: "n" }, n));
      return li;
    }),
  );
  if (!entries.length) list.append(el("li", { class: "empty" }, "none"));
}

function renderEscalations(items) {
  const list = document.getElementById("escalations");
  list.replaceChildren(
    ...items.map((e) => {
      const li = el("li", { "data-submission": e.submission_id }, e.submission_id);
      const when = new Date(e.latest_escalated_at).toLocaleTimeString();
      li.append(el("span", { class: "when" }, `${e.genre ?? "?"} · ${e.total} votes · ${when}`));
      return li;
    }),
  );
  if (!items.length) list.append(el("li", { class: "empty" }, "none yet"));
}

async function refreshAggregates() {
  try {
    const [stats, escalations] = await Promise.all([
      getJSON("/api/v1/statistics?minutes=10"),
      getJSON("/api/v1/escalations?limit=10"),
    ]);
    document.getElementById("total-votes").textContent = stats.totals.votes;
    document.getElementById("total-ballots").textContent = stats.totals.ballots;
    document.getElementById("total-rejections").textContent = stats.totals.rejections;
    renderRate(stats.recent);
    renderReasons(stats.recent);
    renderEscalations(escalations.items);
  } catch (err) {
    console.warn("aggregates unavailable", err);
  }
}

async function start() {
  connect(); // first, so no change between the list and the stream is missed
  try {
    const page = await getJSON(`/api/v1/tallies?limit=${MAX_ROWS}`);
    for (const t of page.items) remember(t, false);
  } catch (err) {
    console.warn("tallies unavailable", err);
  }
  renderTallies();
  await refreshAggregates();
  setInterval(refreshAggregates, 5000);
}

document.addEventListener("DOMContentLoaded", start);
