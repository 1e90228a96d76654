// otel-monitor console UI: plain DOM, no build step, no network beyond this console.
// Every value from telemetry goes in as text (never as HTML): spans are untrusted input.
"use strict";

const $ = (id) => document.getElementById(id);
// sort: table testid -> [column index, direction]; open: keys of what the user opened (kept across live updates).
const state = { timer: null, paused: false, sort: {}, open: new Set(), events: null, lastRefresh: 0, pending: false };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// --- formatting (tests mirror these) ---------------------------------------
const fmt = {
  pct: (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"),
  // Seconds: under a millisecond in µs, never "0.0 ms".
  secs: (x) => (x === null || x === undefined ? "–" : x === 0 ? "0 s" : x < 0.001 ? (x * 1e6).toFixed(0) + " µs"
    : x < 1 ? (x * 1000).toFixed(1) + " ms" : x.toFixed(2) + " s"),
  ms: (x) => (x === null || x === undefined ? "–" : x < 1 ? (x * 1000).toFixed(0) + " µs"
    : x < 1000 ? x.toFixed(1) + " ms" : (x / 1000).toFixed(2) + " s"),
  // A duration to the microsecond: "12.345 ms" / "420 µs".
  exact: (us) => (us < 1000 ? us.toFixed(0) + " µs" : (us / 1000).toFixed(3) + " ms"),
  num: (x) => (x === null || x === undefined ? "–" : Number.isInteger(x) ? String(x) : x.toFixed(2)),
  rate: (x) => (x === null || x === undefined ? "–" : x.toFixed(2) + "/s"),
  time: (ms) => new Date(ms).toLocaleTimeString(),
  hm: (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
  day: (ms) => new Date(ms).toLocaleDateString([], { month: "short", day: "numeric" }),
  datetime: (ms) => new Date(ms).toLocaleString(),
};

// A value in a metric's unit: seconds as durations, "By" as bytes, {things} dropped, others appended.
function unitFormat(unit) {
  if (unit === "s") return fmt.secs;
  if (unit === "ms") return (x) => (x === null || x === undefined ? "–" : fmt.ms(x));
  if (unit === "By") return (x) => (x === null || x === undefined ? "–" : x >= 1048576 ? (x / 1048576).toFixed(1) + " MiB" : x >= 1024 ? (x / 1024).toFixed(1) + " KiB" : fmt.num(x) + " B");
  const suffix = !unit || unit === "1" ? "" : " " + unit.replace(/^\{(.*)\}$/, "$1");
  return (x) => (x === null || x === undefined ? "–" : (Math.abs(x) >= 100 ? x.toFixed(0) : fmt.num(x)) + suffix);
}

// The route: "#/view/arg?query" -> {name, arg, query}.
function route() {
  const raw = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, search] = raw.split("?");
  const parts = path.split("/");
  return { name: parts[0] || "overview", arg: parts[1] ? decodeURIComponent(parts.slice(1).join("/")) : undefined,
    query: new URLSearchParams(search || "") };
}

// 7d and 30d come from the hourly roll-ups (--db), which hold operations only: other views show the last day.
const LONG_WINDOWS = new Set(["7d", "30d"]);
const LONG_WINDOW_PATHS = new Set(["/api/summary", "/api/operations"]);
function windowFor(path) {
  const w = $("window").value;
  return LONG_WINDOWS.has(w) && !LONG_WINDOW_PATHS.has(path) ? "24h" : w;
}

function longWindowNote(name) {
  const w = $("window").value;
  if (!LONG_WINDOWS.has(w)) return null;
  const text = ["overview", "operations"].includes(name)
    ? `Over ${w}: hourly roll-ups kept in the --db file, the last day from memory. Health and throughput are the last day's.`
    : `This page shows the last 24h: ${w} covers the overview and the operations list.`;
  return h("p", { class: "note", "data-testid": "long-window-note" }, text);
}

function params(extra, path) {
  const q = new URLSearchParams();
  if ($("service").value) q.set("service", $("service").value);
  q.set("window", windowFor(path));
  for (const [k, v] of Object.entries(extra || {})) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  return q.toString();
}

async function api(path, extra) {
  const sep = path.includes("?") ? "&" : "?";
  const r = await fetch(path + sep + params(extra, path), { credentials: "same-origin" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function status(value) { return h("span", { class: "status " + value, "data-testid": "status" }, value); }
function card(label, value, testid) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value));
}

// A sortable table inside its own horizontal scroller (a phone scrolls the table, not the page).
// Headers are [label, class, sortable (default true)]; a cell's data-sort overrides its text.
function table(headers, rows, testid, caption) {
  const tbody = h("tbody", {}, rows);
  const ths = headers.map(([t, cls, sortable], i) => {
    if (sortable === false || !t) return h("th", { class: cls || null, scope: "col" }, t);
    return h("th", { class: cls || null, scope: "col", "aria-sort": "none" },
      h("button", { class: "sort", type: "button", "data-col-index": i, onclick: () => sortBy(testid, i) }, t));
  });
  const t = h("table", { "data-testid": testid }, caption ? h("caption", { class: "sr-only" }, caption) : null,
    h("thead", {}, h("tr", {}, ths)), tbody);
  if (state.sort[testid]) applySort(t, ...state.sort[testid]);
  return h("div", { class: "table-wrap" }, t);
}

function sortBy(testid, index) {
  const [col, dir] = state.sort[testid] || [-1, "none"];
  const next = col === index && dir === "ascending" ? "descending" : "ascending";
  state.sort[testid] = [index, next];
  document.querySelectorAll(`table[data-testid='${testid}']`).forEach((t) => applySort(t, index, next));
}

function cellKey(row, index) {
  const cell = row.children[index];
  if (!cell) return "";
  const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  const n = Number(raw);
  return raw !== "" && raw !== "–" && !Number.isNaN(n) ? n : raw;
}

function applySort(t, index, dir) {
  const tbody = t.tBodies[0];
  const rows = [...tbody.rows];
  const sign = dir === "descending" ? -1 : 1;
  rows.sort((a, b) => {
    const x = cellKey(a, index), y = cellKey(b, index);
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    if (typeof x === "number") return -1;
    if (typeof y === "number") return 1;
    return sign * String(x).localeCompare(String(y));
  });
  tbody.append(...rows);
  t.querySelectorAll("th").forEach((th, i) => th.setAttribute("aria-sort", i === index ? dir : "none"));
}

function link(href, text, attrs) { return h("a", { href, ...(attrs || {}) }, text); }
function hashWith(name, arg, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (Array.isArray(v)) v.filter(Boolean).forEach((x) => q.append(k, x));
    else if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  const qs = q.toString();
  return "#/" + name + (arg ? "/" + encodeURIComponent(arg) : "") + (qs ? "?" + qs : "");
}
// Something the user can open and close; its state survives live updates.
function openable(key, summary, ...content) {
  return h("details", { "data-key": key, open: state.open.has(key), ontoggle: (e) => {
    if (e.target.open) state.open.add(key); else state.open.delete(key);
  } }, h("summary", {}, summary), content);
}

// A line chart with a time axis (ticks every few minutes) and a y axis in the metric's unit.
const PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#9a6700", "#bf3989"];
function chart(title, lines, format, testid, size) {
  // lines: [{label, points: [{t, v}]}] or a bare point list.
  if (!lines.length || !("points" in lines[0])) lines = [{ label: title, points: lines }];
  const all = lines.flatMap((l) => l.points);
  const values = all.map((p) => p.v).filter((v) => v !== null && v !== undefined);
  const max = Math.max(...values, 0) || 1;
  // The left margin fits the longest y label.
  const [W, H] = size || [360, 150], R = 12, T = 10, B = 22;
  const L = 8 + 6 * Math.max(...[0, max / 2, max].map((v) => String(format(v)).length));
  const times = all.map((p) => p.t);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const x = (t) => L + ((t - t0) * (W - L - R)) / Math.max(t1 - t0, 1);
  const y = (v) => H - B - ((H - B - T) * v) / max;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "aria-label": `${title}: up to ${format(max)} between ${all.length ? fmt.hm(t0) : ""} and ${all.length ? fmt.hm(t1) : ""}` });
  // y axis: 0, half, max in the unit, with grid lines.
  for (const v of [0, max / 2, max]) {
    svg.append(s("line", { x1: L, y1: y(v), x2: W - R, y2: y(v), class: "grid" }));
    svg.append(s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, format(v)));
  }
  // time axis: about five ticks on whole minutes.
  if (all.length) {
    const spanMin = Math.max(1, (t1 - t0) / 60000);
    const every = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440, 2880, 4320, 10080].find((m) => spanMin / m <= 5) || 10080;
    const first = Math.ceil(t0 / (every * 60000)) * every * 60000;
    const label = every >= 1440 ? fmt.day : fmt.hm;  // 7 and 30 days: ticks on days
    for (let t = first; t <= t1; t += every * 60000) {
      svg.append(s("line", { x1: x(t), y1: H - B, x2: x(t), y2: H - B + 4, class: "axis" }));
      svg.append(s("text", { x: Math.min(x(t), W - R - 14), y: H - B + 15, "text-anchor": "middle" }, label(t)));
    }
  }
  svg.append(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  lines.forEach((line, li) => {
    const color = PALETTE[li % PALETTE.length];
    let path = "", pen = false;
    line.points.forEach((p) => {
      if (p.v === null || p.v === undefined) { pen = false; return; }
      path += (pen ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p.v).toFixed(1);
      pen = true;
    });
    svg.append(s("path", { d: path, fill: "none", stroke: color, "stroke-width": 1.5 }));
    // A dot per value, so a single minute with data still shows.
    line.points.forEach((p) => { if (p.v !== null && p.v !== undefined) svg.append(s("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2, fill: color })); });
  });
  const legend = lines.length > 1 ? h("ul", { class: "legend" }, lines.map((l, i) => h("li", {},
    (() => { const g = s("svg", { width: 10, height: 10, "aria-hidden": "true" }); g.append(s("rect", { width: 10, height: 10, fill: PALETTE[i % PALETTE.length] })); return g; })(),
    " " + l.label))) : null;
  return h("figure", { class: "chart", "data-testid": testid || null }, h("figcaption", { class: "title" }, title), svg, legend);
}

// The series' step as a chart title says it: "minute", "24 min", "3 h" (points are per step, not per minute).
function stepName(series) {
  const minutes = series.length > 1 ? Math.round((series[1].t - series[0].t) / 60000) : 1;
  return minutes === 1 ? "minute" : minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`;
}

function charts(series) {
  const step = stepName(series);
  return h("div", { class: "charts" },
    chart(`calls per ${step}`, series.map((p) => ({ t: p.t, v: p.calls })), unitFormat("{call}")),
    chart(`errors per ${step}`, series.map((p) => ({ t: p.t, v: p.errors })), unitFormat("{error}")),
    chart("p95 latency", series.map((p) => ({ t: p.t, v: p.p95 })), fmt.secs));
}

// --- views -------------------------------------------------------------------
// Where the figures come from, and how exact they are: the switch from spans to metrics is visible.
function figuresNote(svc) {
  if (!svc.source) return null;
  const from = svc.source === "metrics" ? "the duration metric" : "spans (no metric export yet)";
  const error = svc.percentile_error == null ? "" : `, percentiles within ${fmt.pct(svc.percentile_error)}`;
  return h("p", { class: "note", "data-testid": "figures-source" }, `Figures from ${from}${error}.`);
}

// The app's queues (monitor.queue.depth): items waiting now, and the peak in the window.
function queueSection(queues) {
  if (!queues || !queues.length) return null;
  return h("div", { "data-testid": "queues" }, h("h3", {}, "Queues"),
    table([["queue"], ["status"], ["waiting now", "num"], ["peak", "num"], ["instances", "num"]],
      queues.map((q) => h("tr", { "data-testid": "queue-" + q.queue }, h("td", {}, q.queue),
        h("td", { title: `critical above ${q.limit} waiting (QueueDepthHigh)` }, status(q.status)),
        h("td", { class: "num", "data-col": "depth" }, fmt.num(q.depth)), h("td", { class: "num", "data-col": "peak" }, fmt.num(q.peak)),
        h("td", { class: "num" }, q.instances))), "queues"));
}

// Business KPIs the service records with otel_monitor.business (amounts, counts, distinct users).
function businessSection(b) {
  if (!b || !(b.amounts.length || Object.keys(b.counts).length || b.users.length)) return null;
  const money = (v, c) => `${fmt.num(v)} ${c}`;
  return h("div", { "data-testid": "business" }, h("h3", {}, "Business"),
    h("div", { class: "cards" },
      b.amounts.map((a) => [card(`${a.kpi} (${a.count} × avg ${money(a.average, a.currency)})`, money(a.total, a.currency), "business-" + a.kpi)]),
      Object.entries(b.counts).map(([k, v]) => card(k, fmt.num(v), "business-" + k)),
      b.users.map((u) => card(`${u.kpi}: distinct users, ${fmt.pct(u.return_rate)} returning`, fmt.num(u.users), "business-users-" + u.kpi))));
}

// Client errors (4xx) are not failures: shown apart, auth failures counted on their own.
function clientErrors(r) {
  if (!r.client_errors) return null;
  const by = Object.entries(r.outcomes || {}).filter(([k]) => k !== "server_error").map(([k, v]) => `${k} ${v}`).join(", ");
  return h("p", { "data-testid": "client-errors" }, `Client errors (4xx; failures only with OTEL_MONITOR_CLIENT_ERRORS_FAIL): ${fmt.num(r.client_errors)} ` +
    `(${fmt.pct(r.client_error_rate)}), auth failures ${fmt.num(r.auth_failures)}: ${by}`);
}

// Who acknowledged, when the acknowledging request said (POST .../ack {"by": ...}).
function acknowledgedBy(a) {
  return a.acknowledged_by ? `acknowledged by ${a.acknowledged_by}` : "acknowledged";
}

// The alert's runbook (the rules' runbook_url annotation), after the other links.
function runbookLink(a) {
  return a.runbook_url ? [" · ", h("a", { href: a.runbook_url, target: "_blank", rel: "noopener", "data-testid": "alert-runbook" }, "runbook")] : [];
}

function alertLinks(a) {
  if (a.rule === "health") return [link("#/health", "health checks"), ...runbookLink(a)];
  // Queue depths and uptime objectives are on the overview, not an operation's page.
  if (a.rule === "queue_depth") return [link("#/overview", "queues on the overview", { "data-testid": "alert-overview" }), ...runbookLink(a)];
  if (a.rule === "uptime") return [link("#/overview", "uptime objectives", { "data-testid": "alert-overview" }), ...runbookLink(a)];
  const failed = /error|success/i.test(a.rule + a.alertname);
  return [link("#/operation/" + encodeURIComponent(a.subject), "operation " + a.subject, { "data-testid": "alert-operation" }), " · ",
    link(hashWith("traces", failed ? "failed" : "slow", { operation: a.subject, service: a.service }), "example traces", { "data-testid": "alert-traces" }),
    ...runbookLink(a)];
}

// Uptime to the thousandth of a percent, trailing zeros dropped: 99.95%, 87.5%, 100%.
function uptimePct(x) { return x === null || x === undefined ? "–" : String(+(x * 100).toFixed(3)) + "%"; }

// Probed URLs and health checks against the config file's uptime: objectives, over 30 days.
function uptimeSection(rows) {
  if (!rows || !rows.length) return null;
  const answer = (r) => r.kind !== "probe" ? "" : (r.status_code ? `HTTP ${r.status_code}` : r.error ? `no answer: ${r.error}` : "–") +
    (r.duration_ms == null ? "" : ` in ${fmt.num(r.duration_ms)} ms`);
  return h("section", { class: "service", "data-testid": "overview-uptime", "aria-label": "uptime objectives" },
    h("h2", {}, "Uptime objectives (30 days)"),
    table([["probed URL or health check"], ["now"], ["uptime", "num"], ["objective", "num"], ["budget left", "num"],
      ["down / samples", "num"], ["last answer"]],
    rows.map((r) => h("tr", { "data-testid": `uptime-${r.kind}-${r.service}-${r.method || ""}${r.target}` },
      h("td", {}, r.kind === "probe" ? `${r.method} ${r.target} (${r.service})` : `health check ${r.service} / ${r.target}`),
      h("td", {}, status(r.up == null ? "unknown" : r.up ? "up" : "down")),
      h("td", { class: "num", "data-col": "uptime", "data-sort": r.uptime ?? "" }, uptimePct(r.uptime)),
      h("td", { class: "num", "data-col": "objective", "data-sort": r.objective ?? "" }, uptimePct(r.objective)),
      h("td", { class: "num", "data-col": "budget", "data-sort": r.budget_left ?? "" }, fmt.pct(r.budget_left)),
      h("td", { class: "num", "data-col": "down" }, `${r.down} / ${r.samples}`),
      h("td", { "data-col": "answer" }, answer(r)))), "uptime", "uptime objectives"));
}

// What the alert webhook did (--alert-webhook): a failing receiver shows here, not only in the log.
function webhookNote(w) {
  if (!w) return null;
  const text = `Webhook: ${w.sent} sent, ${w.failed} failed (${w.failed_attempts} failed attempts, ${w.retries} retried), ` +
    `${w.dropped} dropped, ${w.queued} queued` + (w.last_error ? `; last error ${w.last_error} at ${fmt.datetime(w.last_error_at)}` : "");
  return h("p", { class: w.failed || w.failed_attempts ? "note stale" : "note", "data-testid": "webhook" }, text);
}

const views = {
  async overview() {
    const [data, alerts, health, uptime] = await Promise.all([api("/api/summary"), api("/api/alerts"), api("/api/health"), api("/api/uptime")]);
    if (!data.services.length) return [h("h1", {}, "Overview"), emptyHelp()];
    const firing = alerts.firing;
    return [h("h1", {}, "Overview"),
      h("section", { class: "service", "data-testid": "overview-alerts", "aria-label": "firing alerts" },
        h("h2", {}, `Firing alerts (${firing.length})`),
        firing.length ? h("ul", {}, firing.map((a) => h("li", { "data-testid": "overview-alert-" + a.id }, status(a.severity), " ",
          a.service, ": ", a.summary, " — ", alertLinks(a)))) : h("p", { class: "muted" }, "None firing.")),
      h("section", { class: "service", "data-testid": "overview-health", "aria-label": "health" },
        h("h2", {}, "Health"),
        health.checks.length ? h("ul", { class: "inline" }, health.checks.map((c) => h("li", { "data-testid": "overview-check-" + c.service + "-" + c.check },
          status(c.state), ` ${c.service} / ${c.check} (uptime ${fmt.pct(c.uptime)})`))) : h("p", { class: "muted" }, "No health checks reported.")),
      uptimeSection(uptime.objectives),
      h("p", { class: "note" }, data.note),
      data.services.map((svc) => h("section", { class: "service", "data-testid": "service-" + svc.service },
        h("h2", {}, status(svc.status), svc.service),
        liveness(svc),
        h("div", { class: "cards" },
          card("calls", fmt.num(svc.calls), "calls"),
          card("throughput, last minute", fmt.rate(svc.throughput_per_s), "throughput"),
          card("error rate", fmt.pct(svc.error_rate), "error-rate"),
          card("p50", fmt.secs(svc.p50), "p50"), card("p95", fmt.secs(svc.p95), "p95"),
          card("p99", fmt.secs(svc.p99), "p99"), card("min", fmt.secs(svc.min), "min"),
          card("max", fmt.secs(svc.max), "max")),
        figuresNote(svc),
        svc.unhealthy_operations.length ? h("p", {}, "Outside SLO: ",
          svc.unhealthy_operations.map((op, i) => [i ? ", " : "", link("#/operation/" + encodeURIComponent(op), op)])) : null,
        svc.failing_checks.length ? h("p", {}, "Failing checks: " + svc.failing_checks.join(", ")) : null,
        businessSection(svc.business),
        queueSection(svc.queues),
        charts(svc.series)))];
  },

  async operations() {
    const data = await api("/api/operations");
    return [h("h1", {}, "Operations"),
      h("p", { class: "note" }, "Calls and percentiles from the monitor.operation.duration histogram when the service sends it, from spans until then (column source); either way a 4xx answer is a success. Percentiles are interpolated within a bucket narrowed to the observed min and max, within the relative error shown (column ±). Click a column to sort."),
      table([["operation"], ["service"], ["status"], ["calls", "num"], ["success", "num"], ["p50", "num"], ["p95", "num"],
        ["p99", "num"], ["max", "num"], ["±", "num"], ["cache hit", "num"], ["fallback", "num"], ["source"]],
      data.operations.map((r) => h("tr", { "data-testid": "op-" + r.service + "-" + r.operation },
        h("td", {}, link("#/operation/" + encodeURIComponent(r.operation), r.operation)), h("td", {}, r.service),
        h("td", { "data-sort": ["ok", "warning", "critical"].indexOf(r.status) }, status(r.status)),
        h("td", { class: "num", "data-col": "calls" }, fmt.num(r.calls)),
        h("td", { class: "num", "data-col": "success", "data-sort": r.success_rate ?? "" }, fmt.pct(r.success_rate)),
        h("td", { class: "num", "data-col": "p50", "data-sort": r.p50 ?? "" }, fmt.secs(r.p50)),
        h("td", { class: "num", "data-col": "p95", "data-sort": r.p95 ?? "" }, fmt.secs(r.p95)),
        h("td", { class: "num", "data-col": "p99", "data-sort": r.p99 ?? "" }, fmt.secs(r.p99)),
        h("td", { class: "num", "data-col": "max", "data-sort": r.max ?? "" }, fmt.secs(r.max)),
        h("td", { class: "num", "data-col": "error", "data-sort": r.percentile_error ?? "" }, fmt.pct(r.percentile_error)),
        h("td", { class: "num", "data-col": "cache", "data-sort": r.cache_hit_rate ?? "" }, fmt.pct(r.cache_hit_rate)),
        h("td", { class: "num", "data-col": "fallback", "data-sort": r.fallback_share ?? "" }, fmt.pct(r.fallback_share)),
        h("td", { class: "muted" }, r.source))), "operations")];
  },

  async operation(name) {
    const data = await api("/api/operations/" + encodeURIComponent(name));
    const t = data.thresholds;
    return [h("h1", {}, "Operation ", name),
      h("p", {}, link(hashWith("traces", "recent", { operation: name }), "all traces of " + name), " · ",
        link(hashWith("traces", "failed", { operation: name }), "failed traces")),
      data.rows.map((r) => h("section", { class: "service" }, h("h2", {}, status(r.status), r.service),
        h("div", { class: "cards" }, card("calls", fmt.num(r.calls), "calls"), card("success", fmt.pct(r.success_rate), "success"),
          card("p50", fmt.secs(r.p50), "p50"), card("p95", fmt.secs(r.p95), "p95"), card("p99", fmt.secs(r.p99), "p99"),
          card("min", fmt.secs(r.min), "min"), card("max", fmt.secs(r.max), "max"),
          card("throughput, last minute", fmt.rate(r.throughput_per_s), "throughput"),
          card("cache hit", fmt.pct(r.cache_hit_rate), "cache"), card("fallback share", fmt.pct(r.fallback_share), "fallback")),
        Object.keys(r.error_categories).length ? h("p", {}, "Failures by category: " +
          Object.entries(r.error_categories).map(([k, v]) => `${k} ${v}`).join(", ")) : null,
        clientErrors(r))),
      h("p", { class: "note" }, `SLO: success ≥ ${fmt.pct(t.success_warning)} (critical below ${fmt.pct(t.success_critical)}), ` +
        `p${t.latency_percentile * 100} ≤ ${fmt.secs(t.latency_warning)} (critical above ${fmt.secs(t.latency_critical)})`),
      charts(data.series),
      h("h2", {}, "Errors"), errorTable(data.errors),
      h("h2", {}, "Recent traces"), traceTable(data.traces)];
  },

  async errors() {
    const data = await api("/api/errors");
    return [h("h1", {}, "Errors"), h("p", { class: "note" }, "Grouped by fingerprint; counts from received spans (sampled traces keep every error when OTEL_MONITOR_KEEP_ERRORS is on)."),
      errorTable(data.errors)];
  },

  async traces(kind, query) {
    kind = kind || "recent";
    const f = Object.fromEntries(["operation", "status", "min_ms", "max_ms", "start", "end", "limit", "offset"].map((k) => [k, query.get(k) || ""]));
    const attrs = query.getAll("attr");
    const data = await api("/api/traces", { kind, ...f, attr: attrs, ...(query.get("service") ? { service: query.get("service") } : {}) });
    const base = { ...f, attr: attrs, service: query.get("service") || "" };
    const go = (changes) => { location.hash = hashWith("traces", kind, { ...base, ...changes }); };
    const toMs = (v) => (v ? String(new Date(v).getTime()) : "");
    const local = (ms) => { if (!ms) return ""; const d = new Date(Number(ms)); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); return d.toISOString().slice(0, 16); };
    const form = h("form", { class: "filters", "data-testid": "trace-filters", onsubmit: (e) => {
      e.preventDefault();
      const v = (id) => $(id).value.trim();
      go({ operation: v("f-operation"), status: v("f-status"), min_ms: v("f-min"), max_ms: v("f-max"),
        attr: v("f-attr").split(/\s+/).filter(Boolean), start: toMs(v("f-start")), end: toMs(v("f-end")), offset: "" });
    } },
    h("label", {}, "Operation ", h("input", { id: "f-operation", value: f.operation, placeholder: "GET /items/{id}" })),
    h("label", {}, "Status ", h("select", { id: "f-status" }, ["", "ok", "error"].map((v) => h("option", { value: v, selected: v === f.status }, v || "any")))),
    h("label", {}, "Min ms ", h("input", { id: "f-min", type: "number", min: 0, step: "any", value: f.min_ms, class: "short" })),
    h("label", {}, "Max ms ", h("input", { id: "f-max", type: "number", min: 0, step: "any", value: f.max_ms, class: "short" })),
    h("label", {}, "Attributes ", h("input", { id: "f-attr", value: attrs.join(" "), placeholder: "key=value key2=value2" })),
    h("label", {}, "From ", h("input", { id: "f-start", type: "datetime-local", value: local(f.start) })),
    h("label", {}, "To ", h("input", { id: "f-end", type: "datetime-local", value: local(f.end) })),
    h("button", { type: "submit" }, "Search"), " ", link(hashWith("traces", kind), "clear"));
    const first = data.total ? data.offset + 1 : 0, last = data.offset + data.traces.length;
    const pager = h("nav", { class: "pager", "aria-label": "pages" },
      h("span", { "data-testid": "trace-count" }, `${first}–${last} of ${data.total}`), " ",
      data.offset > 0 ? link(hashWith("traces", kind, { ...base, offset: Math.max(0, data.offset - data.limit) }), "‹ newer") : null, " ",
      last < data.total ? link(hashWith("traces", kind, { ...base, offset: data.offset + data.limit }), "older ›", { "data-testid": "next-page" }) : null, " ",
      h("label", {}, "per page ", h("select", { id: "f-limit", onchange: (e) => go({ limit: e.target.value, offset: "" }) },
        [50, 100, 200, 500].map((n) => h("option", { value: n, selected: n === data.limit }, n)))));
    return [h("h1", {}, "Traces"), h("div", { class: "tabs" },
      ["recent", "slow", "failed"].map((k) => h("a", { href: hashWith("traces", k, { ...base, offset: "" }), class: k === kind ? "active" : null }, k))),
    form, pager, traceTable(data.traces)];
  },

  async trace(id, query) {
    const r = await fetch("/api/traces/" + encodeURIComponent(id), { credentials: "same-origin" });
    const data = await r.json();
    if (!r.ok) return [h("h1", {}, "Trace"), h("p", { class: "error-box" }, data.error)];
    const selected = query.get("span");
    const permalink = location.origin + location.pathname + "#/trace/" + data.trace_id;
    const copy = (text, button) => {
      const done = () => { button.textContent = "copied"; setTimeout(() => { button.textContent = "copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
      else { const area = h("textarea", { "aria-hidden": "true", class: "offscreen" }); area.value = text; document.body.append(area); area.select(); document.execCommand("copy"); area.remove(); done(); }
    };
    const span = data.spans.find((sp) => sp.span_id === selected);
    return [h("h1", {}, "Trace ", h("code", { "data-testid": "trace-id" }, data.trace_id), " ",
      h("button", { type: "button", "data-testid": "copy-trace-id", "aria-label": "copy the trace id", onclick: (e) => copy(data.trace_id, e.target) }, "copy"), " ",
      link(permalink, "permalink", { "data-testid": "permalink" })),
      h("p", {}, `${data.spans.length} spans, ${fmt.ms(data.duration_ms)}, started ${fmt.datetime(data.start)}; services: ${data.services.join(", ")}`),
      h("div", { class: "trace-layout" },
        h("div", { class: "trace-main" }, waterfall(data, selected)),
        span ? spanDetails(span, data) : h("p", { class: "muted side" }, "Select a span to see its attributes, events, links and resource.")),
      data.logs.length ? [h("h2", {}, `Logs (${data.logs.length})`), logTable(data.logs, "trace-logs", data.spans)] : null];
  },

  async logs(_arg, query) {
    const f = Object.fromEntries(["level", "q", "trace_id", "span_id", "offset", "limit"].map((k) => [k, query.get(k) || ""]));
    const attrs = query.getAll("attr");
    const service = query.get("service") || "";
    const data = await api("/api/logs", { ...f, attr: attrs, ...(service ? { service } : {}) });
    state.logsQuery = { ...f, attr: attrs, service };
    state.lastLog = data.last_seq;
    const go = (changes) => { location.hash = hashWith("logs", null, { ...f, attr: attrs, service, ...changes }); };
    const form = h("form", { class: "filters", "data-testid": "log-filters", onsubmit: (e) => {
      e.preventDefault();
      const v = (id) => $(id).value.trim();
      go({ level: v("l-level"), q: v("l-text"), attr: v("l-attr").split(/\s+/).filter(Boolean), trace_id: v("l-trace"), offset: "" });
    } },
    h("label", {}, "Level at least ", h("select", { id: "l-level" }, ["", "debug", "info", "warn", "error", "fatal"].map((v) => h("option", { value: v, selected: v === f.level }, v || "any")))),
    h("label", {}, "Text ", h("input", { id: "l-text", value: f.q, type: "search" })),
    h("label", {}, "Attributes ", h("input", { id: "l-attr", value: attrs.join(" "), placeholder: "key=value" })),
    h("label", {}, "Trace id ", h("input", { id: "l-trace", value: f.trace_id, class: "mono" })),
    h("button", { type: "submit" }, "Filter"), " ", link("#/logs", "clear"));
    const first = data.total ? data.offset + 1 : 0, last = data.offset + data.logs.length;
    const tailing = !data.offset;
    return [h("h1", {}, "Logs"), form,
      h("p", { class: "pager" }, h("span", { "data-testid": "log-count" }, `${first}–${last} of ${data.total}`), " ",
        data.offset > 0 ? link(hashWith("logs", null, { ...f, attr: attrs, service, offset: Math.max(0, data.offset - data.limit) }), "‹ newer") : null, " ",
        last < data.total ? link(hashWith("logs", null, { ...f, attr: attrs, service, offset: data.offset + data.limit }), "older ›") : null, " ",
        tailing ? h("span", { class: "note", "data-testid": "tail-state" }, state.paused ? "live tail paused" : "live tail: new records appear on top") : null),
      logTable(data.logs, "logs")];
  },

  async metrics(_arg, query) {
    const data = await api("/api/metrics");
    const name = query.get("name");
    const service = query.get("service") || "";
    const groupBy = query.get("group_by") || "";
    const value = (m) => (m.last_value !== null && typeof m.last_value === "object"
      ? `count ${fmt.num(m.last_value.count)}, sum ${fmt.num(m.last_value.sum)}` : fmt.num(m.last_value));
    let explorer = h("p", { class: "note" }, "Select a metric to chart it.");
    if (name) {
      const chosen = data.metrics.filter((m) => m.name === name && (!service || m.service === service));
      const keys = [...new Set(chosen.flatMap((m) => m.attribute_keys || []))].sort();
      try {
        const series = await api("/api/metrics/series", { name, group_by: groupBy, ...(service ? { service } : {}) });
        const f = unitFormat(series.unit);
        let lines;
        let what;
        if (series.stat === "percentiles" && !groupBy && series.groups.length === 1) {
          const pts = series.groups[0].points;
          lines = ["p50", "p95", "p99"].map((p) => ({ label: p, points: pts.map((x) => ({ t: x.t, v: x[p] })) }));
          what = "p50, p95 and p99";
        } else {
          lines = series.groups.map((g) => ({ label: g.group, points: g.points }));
          what = series.stat === "rate" ? "rate per second" : series.stat === "percentiles" ? "p95" : "value";
        }
        const fy = series.stat === "rate" ? (x) => (x === null || x === undefined ? "–" : f(x) + "/s") : f;
        explorer = h("section", { class: "service", "data-testid": "metric-chart" },
          h("h2", {}, name, " ", h("span", { class: "muted" }, `${series.kind}${series.unit ? ", unit " + series.unit : ""}: ${what}`)),
          h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
            h("label", {}, "Group by ", h("select", { id: "m-group", "data-testid": "group-by", onchange: (e) => {
              location.hash = hashWith("metrics", null, { name, service, group_by: e.target.value });
            } }, h("option", { value: "" }, service ? "(none)" : "service"), keys.map((k) => h("option", { value: k, selected: k === groupBy }, k))))),
          chart(`${name} (${what}) per ${series.step_s / 60} min`, lines, fy, "metric-svg", [900, 260]),
          h("p", { class: "note", "data-testid": "metric-groups" }, `${series.groups.length} series: ${series.groups.map((g) => g.group).join(", ")}`));
      } catch (e) { explorer = h("p", { class: "error-box" }, e.message); }
    }
    return [h("h1", {}, "Metrics"), explorer,
      h("p", { class: "note" }, "Every metric received in the window, the app's own included: the last point's value and attributes. A sum is charted as a rate, a gauge as its value, a histogram by percentiles."),
      table([["metric"], ["service"], ["kind"], ["unit"], ["series", "num"], ["last value", "num"], ["last attributes"], ["last point"]],
        data.metrics.map((m) => h("tr", { "data-testid": "metric-" + m.service + "-" + m.name },
          h("td", {}, link(hashWith("metrics", null, { name: m.name, service: m.service }), m.name)), h("td", {}, m.service), h("td", {}, m.kind + (m.temporality ? ` (${m.temporality})` : "")),
          h("td", {}, m.unit), h("td", { class: "num" }, m.series), h("td", { class: "num", "data-col": "value" }, value(m)),
          h("td", { class: "muted wrap" }, Object.entries(m.last_attributes || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
          h("td", { "data-sort": m.last_seen }, fmt.time(m.last_seen)))), "metrics")];
  },

  async resources() {
    const data = await fetch("/api/resources", { credentials: "same-origin" }).then((r) => r.json());
    if (!data.services.length) return [h("h1", {}, "Resources"), emptyHelp()];
    return [h("h1", {}, "Resources"),
      h("p", { class: "note" }, `Services and their instances (service.instance.id) with the resource attributes they send; silent for over ${data.stale_after_s} s is stale.`),
      data.services.map((svc) => h("section", { class: "service", "data-testid": "resource-" + svc.service },
        h("h2", {}, status(svc.stale ? "stale" : "ok"), svc.service),
        h("p", { class: "note" }, `first seen ${fmt.datetime(svc.first_seen)}, last seen ${fmt.datetime(svc.last_seen)}; ${svc.live_instances} of ${svc.instances.length} instances live`),
        table([["instance"], ["state"], ["SDK"], ["distro"], ["version"], ["first seen"], ["last seen"], ["resource attributes", null, false]],
          svc.instances.map((i) => h("tr", { "data-testid": "instance-" + svc.service + "-" + i.instance },
            h("td", { class: "mono" }, i.instance || "(no instance id)"),
            h("td", { "data-col": "state" }, status(i.stale ? "stale" : "live")),
            h("td", { "data-col": "sdk" }, i.sdk || "–"), h("td", { "data-col": "distro" }, i.distro || "–"),
            h("td", {}, i.service_version || "–"),
            h("td", { "data-sort": i.first_seen, "data-col": "first-seen" }, fmt.datetime(i.first_seen)),
            h("td", { "data-sort": i.last_seen, "data-col": "last-seen" }, fmt.datetime(i.last_seen)),
            h("td", {}, openable("res-" + svc.service + "-" + i.instance, `${Object.keys(i.resource).length} attributes`, kvTable(i.resource))))),
          "instances-" + svc.service)))];
  },

  async journeys() {
    const data = await api("/api/funnels");
    if (!data.funnels.length) return [h("h1", {}, "Journeys"), h("p", { class: "muted" }, "No journey milestones received yet.")];
    return [h("h1", {}, "Journeys"), h("p", { class: "note" }, "Users per step: distinct pseudonymous users who reached the step in the window."),
      data.funnels.map((f) => {
        const max = Math.max(...f.steps.map((st) => st.users), 1);
        return h("section", { class: "service", "data-testid": "funnel-" + f.journey }, h("h2", {}, f.journey),
          table([["step"], ["users", "num"], ["from previous", "num"], ["from first", "num"], ["", null, false]],
            f.steps.map((st) => h("tr", { "data-testid": "step-" + st.step },
              h("td", {}, st.step), h("td", { class: "num", "data-col": "users" }, st.users),
              h("td", { class: "num", "data-col": "conversion" }, fmt.pct(st.conversion_from_previous)),
              h("td", { class: "num" }, fmt.pct(st.conversion_from_first)),
              h("td", {}, (() => { const g = s("svg", { width: 200, height: 12, "aria-hidden": "true" });
                g.append(s("rect", { x: 0, y: 1, height: 10, width: (200 * st.users) / max, class: "bar" })); return g; })()))),
            "funnel"));
      })];
  },

  async alerts() {
    const data = await api("/api/alerts");
    const row = (a, firing) => h("tr", { "data-testid": "alert-" + a.id },
      h("td", {}, status(a.severity)), h("td", {}, a.service), h("td", {}, a.summary, h("div", { class: "note" }, alertLinks(a))),
      h("td", { "data-sort": a.started }, fmt.datetime(a.started)), h("td", { "data-sort": a.resolved || "" }, a.resolved ? fmt.datetime(a.resolved) : ""),
      h("td", {}, firing ? (a.acknowledged ? acknowledgedBy(a) : h("button", { type: "button", onclick: () => ack(a.id) }, "Acknowledge")) : (a.acknowledged ? acknowledgedBy(a) : "")));
    const cols = [["severity"], ["service"], ["alert"], ["since"], ["resolved"], ["", null, false]];
    return [h("h1", {}, "Alerts"), h("p", { class: "note" }, "Evaluated in the console every few seconds with the thresholds, pending periods (for:) and keep_firing_for of the generated Prometheus rules."),
      webhookNote(data.webhook),
      h("h2", {}, `Firing (${data.firing.length})`),
      data.firing.some((a) => !a.acknowledged) ? ackNameField() : null,
      table(cols, data.firing.map((a) => row(a, true)), "firing"),
      h("h2", {}, `Pending (${(data.pending || []).length})`), h("p", { class: "note" }, "Conditions that hold but not yet for the rule's pending period (for:)."),
      table([["severity"], ["service"], ["rule"], ["alert"], ["since"]], (data.pending || []).map((p) => h("tr", { "data-testid": "pending-" + p.alertname + "-" + p.id },
        h("td", {}, status(p.severity)), h("td", {}, p.service), h("td", {}, p.alertname), h("td", {}, p.summary), h("td", { "data-sort": p.active_since }, fmt.datetime(p.active_since)))), "pending"),
      h("h2", {}, `Resolved (${data.resolved.length})`), table(cols, data.resolved.map((a) => row(a, false)), "resolved")];
  },

  async health() {
    const data = await api("/api/health");
    if (!data.checks.length) return [h("h1", {}, "Health"), h("p", { class: "muted" }, "No health checks reported (monitor.health.status).")];
    return [h("h1", {}, "Health"), table([["check"], ["service"], ["state"], ["critical"], ["uptime", "num"], ["instances", "num"], ["last report"], ["recent changes", null, false]],
      data.checks.map((c) => h("tr", { "data-testid": "check-" + c.service + "-" + c.check },
        h("td", {}, c.check), h("td", {}, c.service), h("td", {}, status(c.state)), h("td", {}, c.critical ? "yes" : "no"),
        h("td", { class: "num", "data-col": "uptime", "data-sort": c.uptime ?? "" }, fmt.pct(c.uptime)), h("td", { class: "num" }, c.instances),
        h("td", { "data-sort": c.last_seen }, fmt.time(c.last_seen)),
        h("td", {}, c.incidents.slice(-3).map((i) => h("div", {}, `${fmt.time(i.time)} ${i.previous_state} → ${i.state}`))))), "health")];
  },
};

// Last seen and instances: a service silent past the console's stale-after is "stale", never OK.
function liveness(svc) {
  if (svc.last_seen === null || svc.last_seen === undefined) return null;
  const silent = svc.stale ? `no data for ${Math.round(svc.silent_s)} s (stale after ${svc.stale_after_s} s)` : "live";
  const usage = (i) => i.cpu_cores == null && i.memory_bytes == null ? "" :
    ` CPU ${i.cpu_cores == null ? "-" : fmt.num(i.cpu_cores) + " cores"}, memory ${i.memory_bytes == null ? "-" : fmt.num(i.memory_bytes / 1048576) + " MiB"}`;
  const instances = (svc.instances || []).map((i) => `${i.instance || "(no instance id)"}${i.stale ? " (stale)" : ""}${usage(i)}`);
  return h("p", { class: svc.stale ? "note stale" : "note", "data-testid": "liveness" },
    `last seen ${fmt.datetime(svc.last_seen)}, ${silent}; instances: ${svc.live_instances} live`,
    instances.length ? ` (${instances.join(", ")})` : "", " · ", link("#/resources", "resources"));
}

function emptyHelp() {
  return h("div", {}, h("p", {}, "Nothing received yet. Start your app with the launcher; it reports here by default:"),
    h("pre", {}, "opentelemetry-instrument --service_name shop uvicorn shop.app:app"));
}

// Frames of a Python stack trace that are the app's own (not the standard library's nor a package's).
function appFramesOf(stack) {
  const frames = [];
  const re = /File "([^"]+)", line (\d+), in (.+)/g;
  let m;
  while ((m = re.exec(stack || ""))) {
    if (!/site-packages|dist-packages|\/lib\/python\d|<frozen /.test(m[1])) frames.push(`${m[1]}:${m[2]} in ${m[3]}`);
  }
  return frames.reverse();  // the innermost (where it failed) first
}

function stackBlock(key, stack, appFrames) {
  const frames = appFrames && appFrames.length ? appFrames.map((f) => `${f.file}:${f.line} in ${f.function}`) : appFramesOf(stack);
  return [frames.length ? h("ol", { class: "app-frames", "data-col": "app-frames", "aria-label": "the app's own frames, innermost first" },
    frames.map((f) => h("li", { class: "mono" }, f))) : null,
  openable(key, "full stack trace", h("pre", { class: "stack" }, stack || "(no stack trace)"))];
}

function errorTable(groups) {
  return table([["category"], ["type"], ["operation"], ["service"], ["failed requests", "num"], ["users", "num"], ["spans", "num"], ["first seen"], ["last seen"], ["message and context", null, false]],
    groups.map((g) => h("tr", { "data-testid": "error-" + g.fingerprint },
      h("td", {}, g.category), h("td", {}, g.error_type), h("td", {}, link("#/operation/" + encodeURIComponent(g.operation), g.operation)), h("td", {}, g.service),
      h("td", { class: "num", "data-col": "count" }, g.count), h("td", { class: "num", "data-col": "users" }, g.users ?? ""),
      h("td", { class: "num", "data-col": "occurrences" }, g.occurrences ?? ""),
      h("td", { "data-sort": g.first_seen }, fmt.datetime(g.first_seen)), h("td", { "data-sort": g.last_seen }, fmt.datetime(g.last_seen)),
      h("td", { class: "wrap" }, h("div", {}, g.message),
        (g.app_frames || []).length ? h("ol", { class: "app-frames", "data-col": "app-frames" }, g.app_frames.map((f) => h("li", {}, `${f.file}:${f.line} in ${f.function}`, f.code ? h("code", {}, " " + f.code) : null))) : null,
        openable("error-" + g.fingerprint, "stack trace and traces",
          h("pre", { class: "stack" }, g.stacktrace || "(no stack trace)"),
          h("div", {}, "Example traces: ", g.trace_ids.map((t) => [link("#/trace/" + t, t.slice(0, 12)), " "])),
          h("div", { "data-testid": "error-links" }, link(hashWith("traces", "failed", { operation: g.operation, service: g.service }), "failed traces of " + g.operation),
            g.trace_ids.length ? [" · ", link(hashWith("logs", null, { trace_id: g.trace_ids[0] }), "logs of the latest example")] : null))))), "errors");
}

function traceTable(traces) {
  return table([["trace"], ["root"], ["services"], ["started"], ["duration", "num"], ["spans", "num"], ["status"]],
    traces.map((t) => h("tr", { "data-testid": "trace-" + t.trace_id }, h("td", { class: "mono" }, link("#/trace/" + t.trace_id, t.trace_id.slice(0, 16))), h("td", {}, t.name),
      h("td", {}, t.services.join(", ")), h("td", { "data-sort": t.start }, fmt.time(t.start)),
      h("td", { class: "num", "data-col": "duration", "data-sort": t.duration_ms }, fmt.ms(t.duration_ms)),
      h("td", { class: "num" }, t.spans), h("td", { "data-sort": t.error ? 1 : 0 }, t.error ? status("critical") : status("ok")))), "traces");
}

function kvTable(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return h("dl", { class: "kv" }, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) =>
    [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]));
}

function logBody(l) { return typeof l.body === "string" ? l.body : l.body === null || l.body === undefined ? (l.event_name || "") : JSON.stringify(l.body); }

function logTable(logs, testid, spans) {
  const names = Object.fromEntries((spans || []).map((sp) => [sp.span_id, sp.display_name]));
  return table([["time"], ["level"], ["service"], ["message"], ["trace / span"], ["attributes", null, false]], logs.map((l) => logRow(l, names)), testid);
}

function logRow(l, names) {
  const level = (l.severity || "").toLowerCase();
  return h("tr", { "data-testid": "log-" + (l.seq ?? ""), class: "level-" + level.replace(/[^a-z]/g, "") },
    h("td", { "data-sort": l.time_unix_nano ?? l.time, class: "nowrap" }, fmt.time(l.time)),
    h("td", { "data-col": "level", "data-sort": l.severity_number ?? "" }, l.severity || l.event_name || ""),
    h("td", {}, l.service), h("td", { class: "wrap", "data-col": "message" }, logBody(l)),
    h("td", { class: "mono" }, l.trace_id ? link(hashWith("trace", l.trace_id, l.span_id ? { span: l.span_id } : {}),
      (names && names[l.span_id]) || l.trace_id.slice(0, 12) + (l.span_id ? "/" + l.span_id.slice(0, 6) : ""), { "data-testid": "log-trace-link" }) : ""),
    h("td", {}, Object.keys(l.attributes || {}).length ? openable("log-" + l.seq + "-" + (l.time_unix_nano || l.time), `${Object.keys(l.attributes).length}`, kvTable(l.attributes)) : ""));
}

// Spans in tree order, each span's child spans and logs by time: [[item, depth, isLog]].
// A span that is its own parent, or any cycle, still shows (each span once); logs of no
// known span come at the top level by time.
function spanTree(spans, logs) {
  const ids = new Set(spans.map((sp) => sp.span_id));
  const children = {};
  const add = (parent, item, t, isLog) => (children[parent] = children[parent] || []).push([item, t, isLog]);
  for (const sp of spans) {
    if (sp.parent_span_id && sp.parent_span_id !== sp.span_id && ids.has(sp.parent_span_id)) add(sp.parent_span_id, sp, sp.offset_ms, false);
  }
  for (const l of logs || []) if (ids.has(l.span_id)) add(l.span_id, l, l.offset_ms || 0, true);
  const top = spans.filter((sp) => !sp.parent_span_id || sp.parent_span_id === sp.span_id || !ids.has(sp.parent_span_id))
    .map((sp) => [sp, sp.offset_ms, false])
    .concat((logs || []).filter((l) => !ids.has(l.span_id)).map((l) => [l, l.offset_ms || 0, true]));
  const byTime = (a, b) => a[1] - b[1];
  const ordered = [], seen = new Set();
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [[item, , isLog], depth] = stack.pop();
      if (isLog) { ordered.push([item, depth, true]); continue; }
      if (seen.has(item.span_id)) continue;
      seen.add(item.span_id);
      ordered.push([item, depth, false]);
      (children[item.span_id] || []).slice().sort(byTime).reverse().forEach((c) => stack.push([c, depth + 1]));
    }
  };
  top.sort(byTime).forEach(walk);
  spans.filter((sp) => !seen.has(sp.span_id)).forEach((sp) => walk([sp, sp.offset_ms, false]));  // what only a cycle reaches
  return ordered;
}

function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

function waterfall(data, selected) {
  const total = Math.max(data.duration_ms, 0.001);
  const W = 1000;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const axis = h("div", { class: "axis-labels", "aria-hidden": "true" }, ticks.map((f) => h("span", {}, fmt.ms(total * f))));
  const rows = [];
  const logRowFor = (l, depth) => h("tr", { class: "wf-log", "data-testid": "wlog-" + l.seq },
    h("td", { class: "wrap" }, h("span", { class: "indent" }, "\u00a0\u00a0".repeat(depth)), h("span", { class: "log-mark" }, "log "), clip(`${l.severity || l.event_name || ""} ${logBody(l)}`, 200)),
    h("td", {}, l.service), h("td", { class: "num" }, "+" + fmt.ms(l.offset_ms || 0)),
    h("td", {}, (() => { const g = s("svg", { viewBox: `0 0 ${W} 14`, preserveAspectRatio: "none", class: "waterfall", "aria-hidden": "true" });
      g.append(s("rect", { class: "log-tick", x: (W * (l.offset_ms || 0)) / total, y: 1, width: 3, height: 12 })); return g; })()));
  for (const [sp, depth, isLog] of spanTree(data.spans, data.logs)) {
    if (isLog) { rows.push(logRowFor(sp, depth)); continue; }
    const g = s("svg", { viewBox: `0 0 ${W} 14`, preserveAspectRatio: "none", class: "waterfall", "aria-hidden": "true" });
    g.append(s("rect", { class: "bar" + (sp.status_code === 2 ? " error" : ""), y: 2, height: 10,
      x: (W * sp.offset_ms) / total, width: Math.max((W * sp.duration_ms) / total, 2) }));
    const exc = sp.events.find((e) => e.name === "exception");
    const selfParent = sp.parent_span_id && sp.parent_span_id === sp.span_id;
    rows.push(h("tr", { "data-testid": "span-" + sp.span_id, class: sp.span_id === selected ? "selected" : null },
      h("td", { class: "wrap" }, h("span", { class: "indent" }, "\u00a0\u00a0".repeat(depth)),
        h("a", { href: hashWith("trace", data.trace_id, { span: sp.span_id }), class: "span-link", "aria-current": sp.span_id === selected ? "true" : null }, sp.display_name),
        selfParent ? h("span", { class: "note" }, " (its own parent)") : null,
        exc ? h("div", { class: "error-box" }, clip(`${exc.attributes["exception.type"] || ""}: ${exc.attributes["exception.message"] || ""}`, 120)) : null),
      h("td", {}, sp.service), h("td", { class: "num", "data-col": "duration" }, fmt.ms(sp.duration_ms)), h("td", {}, g)));
  }
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": "waterfall", class: "waterfall-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "span"), h("th", { scope: "col" }, "service"), h("th", { scope: "col", class: "num" }, "duration"),
      h("th", { scope: "col", class: "timeline" }, "timeline", axis))), h("tbody", {}, rows)));
}

function spanDetails(sp, data) {
  const exceptions = sp.events.filter((e) => e.name === "exception");
  const others = sp.events.filter((e) => e.name !== "exception");
  return h("aside", { class: "details", "data-testid": "span-details", "aria-label": "span details" },
    h("h2", {}, sp.display_name),
    h("p", {}, link(hashWith("trace", data.trace_id), "close"), " · ", link(hashWith("logs", null, { trace_id: data.trace_id, span_id: sp.span_id }), "logs of this span")),
    h("dl", { class: "kv" },
      h("dt", {}, "span id"), h("dd", { class: "mono" }, sp.span_id),
      h("dt", {}, "parent"), h("dd", { class: "mono" }, sp.parent_span_id || "(root)"),
      h("dt", {}, "service"), h("dd", {}, sp.service),
      h("dt", {}, "kind"), h("dd", {}, sp.kind_name),
      h("dt", {}, "status"), h("dd", { "data-testid": "span-status" }, sp.status + (sp.status_message ? ": " + sp.status_message : "")),
      h("dt", {}, "duration"), h("dd", { "data-testid": "span-duration" }, fmt.exact(sp.duration_us)),
      h("dt", {}, "starts at"), h("dd", {}, "+" + fmt.exact(sp.offset_ms * 1000)),
      h("dt", {}, "scope"), h("dd", {}, sp.scope || "–")),
    sp.db_statement ? [h("h3", {}, "Statement"), h("pre", { class: "stack", "data-testid": "db-statement" }, sp.db_statement)] : null,
    h("h3", {}, "Attributes"), h("div", { "data-testid": "span-attributes" }, kvTable(sp.attributes)),
    exceptions.length ? [h("h3", {}, "Exceptions"), exceptions.map((e, i) => h("div", { class: "exception", "data-testid": "span-exception" },
      h("p", { class: "error-box" }, `${e.attributes["exception.type"] || ""}: ${e.attributes["exception.message"] || ""}`),
      stackBlock("exc-" + sp.span_id + "-" + i, e.attributes["exception.stacktrace"])))] : null,
    others.length ? [h("h3", {}, "Events"), h("ul", { "data-testid": "span-events" }, others.map((e) => h("li", {}, `+${fmt.ms(e.offset_ms)} ${e.name}`, kvTable(e.attributes))))] : null,
    (sp.links || []).length ? [h("h3", {}, "Links"), h("ul", { "data-testid": "span-links" }, sp.links.map((l) => h("li", { class: "mono" },
      link(hashWith("trace", l.trace_id, { span: l.span_id }), `${l.trace_id.slice(0, 16)}/${l.span_id}`),
      Object.keys(l.attributes || {}).length ? kvTable(l.attributes) : null)))] : null,
    h("h3", {}, "Resource"), h("div", { "data-testid": "span-resource" }, kvTable(sp.resource)));
}

// Who acknowledges: asked once, remembered in this browser, sent with every acknowledgement.
const ACK_NAME_KEY = "otel-monitor-ack-name";
function ackNameField() {
  return h("p", {}, h("label", {}, "Acknowledge as ",
    h("input", { id: "ack-name", "data-testid": "ack-name", maxlength: "100", autocomplete: "name",
      placeholder: "your name", value: localStorage.getItem(ACK_NAME_KEY) || "" })),
    " ", h("span", { class: "error-box", id: "ack-error", "data-testid": "ack-error", role: "alert", hidden: true }));
}

async function ack(id) {
  const field = $("ack-name"), error = $("ack-error");
  const by = field ? field.value.trim() : "";
  if (!by) {
    if (error) { error.textContent = "Enter your name first: the acknowledgement records who."; error.hidden = false; }
    if (field) field.focus();
    return;
  }
  localStorage.setItem(ACK_NAME_KEY, by);
  const r = await fetch("/api/alerts/" + encodeURIComponent(id) + "/ack", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by }) });
  if (!r.ok && error) {
    error.textContent = (await r.json().catch(() => ({}))).error || r.statusText;
    error.hidden = false;
    return;
  }
  render();
}

// --- shell ---------------------------------------------------------------------
async function refreshServices() {
  try {
    const r = await fetch("/api/services", { credentials: "same-origin" });
    const data = await r.json();
    const select = $("service"), current = select.value;
    const known = new Set([...select.options].map((o) => o.value));
    for (const svc of data.services) if (!known.has(svc)) select.append(h("option", { value: svc }, svc));
    select.value = current;
    for (const o of $("window").options) if (LONG_WINDOWS.has(o.value)) o.disabled = !(data.long_windows || []).includes(o.value);
    const evicted = Object.entries(data.evicted).map(([k, v]) => `${k} ${v}`).join(", ");
    $("footer").textContent = `kept: ${data.kept.spans} spans, ${data.kept.logs} logs` +
      (evicted ? ` · evicted (oldest first): ${evicted}` : "") + (data.persistent ? " · persisted in SQLite" : " · in memory") +
      (data.replaying ? ` · replaying stored data: ${data.replay.replayed} of ${data.replay.total} requests, figures partial` : "");
    const alerts = await api("/api/alerts");
    const open = alerts.firing.filter((a) => !a.acknowledged).length;
    $("alert-count").hidden = !open;
    $("alert-count").textContent = open;
  } catch (e) { /* the view shows the error */ }
}

let rendering = 0;
async function render(live) {
  const { name, arg, query } = route();
  const view = views[name] || views.overview;
  for (const a of document.querySelectorAll("#nav a")) {
    const on = a.getAttribute("href") === "#/" + (name === "operation" ? "operations" : name === "trace" ? "traces" : name);
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const ticket = ++rendering;
  try {
    const content = await view(arg, query);
    if (ticket !== rendering) return;  // a newer render started meanwhile
    const scroll = [window.scrollX, window.scrollY];
    const scrollers = [...document.querySelectorAll("#view .table-wrap")].map((el) => el.scrollLeft);
    $("view").replaceChildren(...[longWindowNote(name), content].flat(3).filter(Boolean));
    if (live) {  // where the user was stays where it was
      document.querySelectorAll("#view .table-wrap").forEach((el, i) => { if (scrollers[i]) el.scrollLeft = scrollers[i]; });
      window.scrollTo(...scroll);
    }
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = name;
    document.body.dataset.rendered = location.hash;  // which address the page shows (tests wait on it)
  } catch (e) {
    $("view").replaceChildren(h("p", { class: "error-box" }, "Could not load: " + e.message));
  }
  refreshServices();
}

// A live update: skipped while paused or while the user is typing in or selecting on the page.
async function liveUpdate() {
  if (state.paused) { state.pending = true; return; }
  const active = document.activeElement;
  if (active && $("view").contains(active) && /INPUT|SELECT|TEXTAREA/.test(active.tagName)) return;
  const sel = window.getSelection();
  if (sel && !sel.isCollapsed && $("view").contains(sel.anchorNode)) return;
  const { name, query } = route();
  if (name === "logs" && !query.get("offset")) return tailLogs();
  if (name === "trace") return;  // a trace is complete once shown; the user may be reading a span
  await render(true);
}

// The live tail: records newer than the last shown go on top; nothing shown is re-rendered.
async function tailLogs() {
  const q = state.logsQuery;
  if (!q || state.lastLog === undefined) return;
  const data = await api("/api/logs", { ...q, after: state.lastLog, limit: 500 });
  state.lastLog = data.last_seq;
  const tbody = document.querySelector("table[data-testid='logs'] tbody");
  if (!tbody || !data.logs.length) return;
  tbody.prepend(...data.logs.map((l) => logRow(l)));
  const count = $("view").querySelector("[data-testid='log-count']");
  if (count) count.textContent = `1–${tbody.rows.length} of ${tbody.rows.length}+`;
  document.body.dataset.tail = String(data.last_seq);
}

function throttledUpdate() {
  const now = Date.now();
  if (now - state.lastRefresh < 2000) {
    clearTimeout(state.timer);
    state.timer = setTimeout(throttledUpdate, 2000 - (now - state.lastRefresh));
    return;
  }
  state.lastRefresh = now;
  liveUpdate();
}

function connectEvents() {
  if (state.events || !window.EventSource) return;
  state.events = new EventSource("/api/events");
  state.events.addEventListener("update", throttledUpdate);
  state.events.onerror = () => { $("live-state").textContent = "reconnecting"; };
  state.events.onopen = () => { $("live-state").textContent = ""; };
}

function setPaused(paused) {
  state.paused = paused;
  const b = $("pause");
  b.setAttribute("aria-pressed", String(paused));
  b.textContent = paused ? "Resume live updates" : "Pause live updates";
  document.body.dataset.paused = String(paused);
  const tail = document.querySelector("[data-testid='tail-state']");
  if (tail) tail.textContent = paused ? "live tail paused" : "live tail: new records appear on top";
  if (!paused && state.pending) { state.pending = false; liveUpdate(); }
}

window.addEventListener("hashchange", () => render(false));
document.addEventListener("DOMContentLoaded", () => {
  const saved = new URLSearchParams(location.search);
  if (saved.get("window")) $("window").value = saved.get("window");
  if (saved.get("service")) $("service").append(h("option", { value: saved.get("service"), selected: true }, saved.get("service")));
  $("service").addEventListener("change", () => render(false));
  $("window").addEventListener("change", () => render(false));
  $("pause").addEventListener("click", () => setPaused(!state.paused));
  connectEvents();
  render(false);
});
