// otel-monitor console UI: plain DOM, no build step, no network beyond this console.
// Every value from telemetry goes in as text (never as HTML): spans are untrusted input.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { timer: null };

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
  secs: (x) => (x === null || x === undefined ? "–" : x < 1 ? (x * 1000).toFixed(1) + " ms" : x.toFixed(2) + " s"),
  ms: (x) => (x < 1000 ? x.toFixed(1) + " ms" : (x / 1000).toFixed(2) + " s"),
  num: (x) => (x === null || x === undefined ? "–" : Number.isInteger(x) ? String(x) : x.toFixed(2)),
  rate: (x) => (x === null || x === undefined ? "–" : x.toFixed(2) + "/s"),
  time: (ms) => new Date(ms).toLocaleTimeString(),
  datetime: (ms) => new Date(ms).toLocaleString(),
};

function params(extra) {
  const q = new URLSearchParams();
  if ($("service").value) q.set("service", $("service").value);
  q.set("window", $("window").value);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

async function api(path, extra) {
  const sep = path.includes("?") ? "&" : "?";
  const r = await fetch(path + sep + params(extra), { credentials: "same-origin" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function status(value) { return h("span", { class: "status " + value, "data-testid": "status" }, value); }
function card(label, value, testid) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value));
}
function table(headers, rows, testid) {
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map(([t, cls]) => h("th", { class: cls || null }, t)))),
    h("tbody", {}, rows));
}
function link(href, text) { return h("a", { href }, text); }

// A small line chart: points [{t, v}] drawn as an SVG polyline with a y-axis maximum.
function chart(title, points, format) {
  const W = 320, H = 110, P = 28;
  const values = points.map((p) => p.v).filter((v) => v !== null);
  const max = Math.max(...values, 0) || 1;
  const x = (i) => P + (i * (W - P - 4)) / Math.max(points.length - 1, 1);
  const y = (v) => H - 16 - ((H - 24) * v) / max;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": title });
  svg.append(s("line", { x1: P, y1: H - 16, x2: W, y2: H - 16, stroke: "#d0d7de" }));
  svg.append(s("text", { x: 0, y: 12 }, format(max)));
  svg.append(s("text", { x: 0, y: H - 18 }, format(0)));
  if (points.length) {
    svg.append(s("text", { x: P, y: H - 3 }, fmt.time(points[0].t)));
    svg.append(s("text", { x: W - 2, y: H - 3, "text-anchor": "end" }, fmt.time(points[points.length - 1].t)));
  }
  let path = "", pen = false;
  points.forEach((p, i) => {
    if (p.v === null) { pen = false; return; }
    path += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y(p.v).toFixed(1);
    pen = true;
  });
  svg.append(s("path", { d: path, fill: "none", stroke: "#0969da", "stroke-width": 1.5 }));
  // A dot per value, so a single minute with data still shows.
  points.forEach((p, i) => { if (p.v !== null) svg.append(s("circle", { cx: x(i).toFixed(1), cy: y(p.v).toFixed(1), r: 2, fill: "#0969da" })); });
  return h("div", { class: "chart" }, h("div", { class: "title" }, title), svg);
}

function charts(series) {
  return h("div", { class: "charts" },
    chart("calls per minute", series.map((p) => ({ t: p.t, v: p.calls })), fmt.num),
    chart("errors per minute", series.map((p) => ({ t: p.t, v: p.errors })), fmt.num),
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

// The alert's runbook (the rules' runbook_url annotation), after the other links.
function runbookLink(a) {
  return a.runbook_url ? [" · ", h("a", { href: a.runbook_url, target: "_blank", rel: "noopener", "data-testid": "alert-runbook" }, "runbook")] : [];
}

const views = {
  async overview() {
    const data = await api("/api/summary");
    if (!data.services.length) return [h("h1", {}, "Overview"), emptyHelp()];
    return [h("h1", {}, "Overview"), h("p", { class: "note" }, data.note),
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
        charts(svc.series)))];
  },

  async operations() {
    const data = await api("/api/operations");
    return [h("h1", {}, "Operations"),
      h("p", { class: "note" }, "Calls and percentiles from the monitor.operation.duration histogram when the service sends it, from spans until then (column source); either way a 4xx answer is a success. Percentiles are interpolated within a bucket narrowed to the observed min and max, within the relative error shown (column ±)."),
      table([["operation"], ["service"], ["status"], ["calls", "num"], ["success", "num"], ["p50", "num"], ["p95", "num"],
        ["p99", "num"], ["max", "num"], ["±", "num"], ["cache hit", "num"], ["fallback", "num"], ["source"]],
      data.operations.map((r) => h("tr", { "data-testid": "op-" + r.service + "-" + r.operation },
        h("td", {}, link("#/operation/" + encodeURIComponent(r.operation), r.operation)), h("td", {}, r.service),
        h("td", {}, status(r.status)), h("td", { class: "num", "data-col": "calls" }, fmt.num(r.calls)),
        h("td", { class: "num", "data-col": "success" }, fmt.pct(r.success_rate)),
        h("td", { class: "num", "data-col": "p50" }, fmt.secs(r.p50)),
        h("td", { class: "num", "data-col": "p95" }, fmt.secs(r.p95)),
        h("td", { class: "num", "data-col": "p99" }, fmt.secs(r.p99)),
        h("td", { class: "num", "data-col": "max" }, fmt.secs(r.max)),
        h("td", { class: "num", "data-col": "error" }, fmt.pct(r.percentile_error)),
        h("td", { class: "num", "data-col": "cache" }, fmt.pct(r.cache_hit_rate)),
        h("td", { class: "num", "data-col": "fallback" }, fmt.pct(r.fallback_share)),
        h("td", { class: "muted" }, r.source))), "operations")];
  },

  async operation(name) {
    const data = await api("/api/operations/" + encodeURIComponent(name));
    const t = data.thresholds;
    return [h("h1", {}, "Operation ", name),
      data.rows.map((r) => h("section", { class: "service" }, h("h2", {}, status(r.status), r.service),
        h("div", { class: "cards" }, card("calls", fmt.num(r.calls), "calls"), card("success", fmt.pct(r.success_rate), "success"),
          card("p50", fmt.secs(r.p50), "p50"), card("p95", fmt.secs(r.p95), "p95"), card("p99", fmt.secs(r.p99), "p99"),
          card("min", fmt.secs(r.min), "min"), card("max", fmt.secs(r.max), "max"),
          card("throughput, last minute", fmt.rate(r.throughput_per_s), "throughput"),
          card("cache hit", fmt.pct(r.cache_hit_rate), "cache"), card("fallback share", fmt.pct(r.fallback_share), "fallback")),
        Object.keys(r.error_categories).length ? h("p", {}, "Failures by category: " +
          Object.entries(r.error_categories).map(([k, v]) => `${k} ${v}`).join(", ")) : null,
        r.client_errors ? h("p", { "data-col": "client-errors" }, `Client errors (4xx, not failures): ` +
          `${fmt.num(r.client_errors)} (${fmt.pct(r.client_error_rate)}), auth failures ${fmt.num(r.auth_failures)}: ` +
          Object.entries(r.outcomes).filter(([k]) => k !== "server_error").map(([k, v]) => `${k} ${v}`).join(", ")) : null)),
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

  async traces(kind) {
    kind = kind || "recent";
    const data = await api("/api/traces", { kind });
    return [h("h1", {}, "Traces"), h("div", { class: "tabs" },
      ["recent", "slow", "failed"].map((k) => h("a", { href: "#/traces/" + k, class: k === kind ? "active" : null }, k))),
    traceTable(data.traces)];
  },

  async trace(id) {
    const r = await fetch("/api/traces/" + encodeURIComponent(id), { credentials: "same-origin" });
    const data = await r.json();
    if (!r.ok) return [h("h1", {}, "Trace"), h("p", { class: "error-box" }, data.error)];
    return [h("h1", {}, "Trace ", h("code", {}, data.trace_id)),
      h("p", {}, `${data.spans.length} spans, ${fmt.ms(data.duration_ms)}, started ${fmt.datetime(data.start)}`),
      waterfall(data), h("h2", {}, "Logs"),
      table([["time"], ["service"], ["severity"], ["message"]], data.logs.map((l) => h("tr", {},
        h("td", {}, fmt.time(l.time)), h("td", {}, l.service), h("td", {}, l.severity || l.event_name),
        h("td", {}, typeof l.body === "string" ? l.body : JSON.stringify(l.body ?? l.attributes)))), "trace-logs")];
  },

  async journeys() {
    const data = await api("/api/funnels");
    if (!data.funnels.length) return [h("h1", {}, "Journeys"), h("p", { class: "muted" }, "No journey milestones received yet.")];
    return [h("h1", {}, "Journeys"), h("p", { class: "note" }, "Users per step: distinct pseudonymous users who reached the step in the window."),
      data.funnels.map((f) => {
        const max = Math.max(...f.steps.map((st) => st.users), 1);
        return h("section", { class: "service", "data-testid": "funnel-" + f.journey }, h("h2", {}, f.journey),
          table([["step"], ["users", "num"], ["from previous", "num"], ["from first", "num"], [""]],
            f.steps.map((st) => h("tr", { "data-testid": "step-" + st.step },
              h("td", {}, st.step), h("td", { class: "num", "data-col": "users" }, st.users),
              h("td", { class: "num", "data-col": "conversion" }, fmt.pct(st.conversion_from_previous)),
              h("td", { class: "num" }, fmt.pct(st.conversion_from_first)),
              h("td", {}, (() => { const g = s("svg", { width: 200, height: 12 });
                g.append(s("rect", { x: 0, y: 1, height: 10, width: (200 * st.users) / max, fill: "#0969da" })); return g; })()))),
            "funnel"));
      })];
  },

  async alerts() {
    const data = await api("/api/alerts");
    const row = (a, firing) => h("tr", { "data-testid": "alert-" + a.id },
      h("td", {}, status(a.severity)), h("td", {}, a.service), h("td", {}, a.summary, runbookLink(a)),
      h("td", {}, fmt.datetime(a.started)), h("td", {}, a.resolved ? fmt.datetime(a.resolved) : ""),
      h("td", {}, firing ? (a.acknowledged ? "acknowledged" : h("button", { onclick: () => ack(a.id) }, "Acknowledge")) : (a.acknowledged ? "acknowledged" : "")));
    const cols = [["severity"], ["service"], ["alert"], ["since"], ["resolved"], [""]];
    return [h("h1", {}, "Alerts"), h("p", { class: "note" }, "Evaluated in the console every few seconds with the thresholds, pending periods (for:) and keep_firing_for of the generated Prometheus rules."),
      h("h2", {}, `Firing (${data.firing.length})`), table(cols, data.firing.map((a) => row(a, true)), "firing"),
      h("h2", {}, `Pending (${(data.pending || []).length})`), h("p", { class: "note" }, "Conditions that hold but not yet for the rule's pending period (for:)."),
      table([["severity"], ["service"], ["rule"], ["alert"], ["since"]], (data.pending || []).map((p) => h("tr", { "data-testid": "pending-" + p.alertname + "-" + p.id },
        h("td", {}, status(p.severity)), h("td", {}, p.service), h("td", {}, p.alertname), h("td", {}, p.summary), h("td", {}, fmt.datetime(p.active_since)))), "pending"),
      h("h2", {}, `Resolved (${data.resolved.length})`), table(cols, data.resolved.map((a) => row(a, false)), "resolved")];
  },

  async metrics() {
    const data = await api("/api/metrics");
    const value = (m) => (m.last_value !== null && typeof m.last_value === "object"
      ? `count ${fmt.num(m.last_value.count)}, sum ${fmt.num(m.last_value.sum)}` : fmt.num(m.last_value));
    return [h("h1", {}, "Metrics"),
      h("p", { class: "note" }, "Every metric received in the window, the app's own included: the last point's value and attributes."),
      table([["metric"], ["service"], ["kind"], ["unit"], ["series", "num"], ["last value", "num"], ["last attributes"], ["last point"]],
        data.metrics.map((m) => h("tr", { "data-testid": "metric-" + m.service + "-" + m.name },
          h("td", {}, m.name), h("td", {}, m.service), h("td", {}, m.kind + (m.temporality ? ` (${m.temporality})` : "")),
          h("td", {}, m.unit), h("td", { class: "num" }, m.series), h("td", { class: "num", "data-col": "value" }, value(m)),
          h("td", { class: "muted" }, Object.entries(m.last_attributes || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
          h("td", {}, fmt.time(m.last_seen)))), "metrics")];
  },

  async health() {
    const data = await api("/api/health");
    if (!data.checks.length) return [h("h1", {}, "Health"), h("p", { class: "muted" }, "No health checks reported (monitor.health.status).")];
    return [h("h1", {}, "Health"), table([["check"], ["service"], ["state"], ["critical"], ["uptime", "num"], ["instances", "num"], ["last report"], ["recent changes"]],
      data.checks.map((c) => h("tr", { "data-testid": "check-" + c.service + "-" + c.check },
        h("td", {}, c.check), h("td", {}, c.service), h("td", {}, status(c.state)), h("td", {}, c.critical ? "yes" : "no"),
        h("td", { class: "num", "data-col": "uptime" }, fmt.pct(c.uptime)), h("td", { class: "num" }, c.instances),
        h("td", {}, fmt.time(c.last_seen)),
        h("td", {}, c.incidents.slice(-3).map((i) => h("div", {}, `${fmt.time(i.time)} ${i.previous_state} → ${i.state}`))))), "health")];
  },
};

// Last seen and instances: a service silent past the console's stale-after is "stale", never OK.
function liveness(svc) {
  if (svc.last_seen === null || svc.last_seen === undefined) return null;
  const silent = svc.stale ? `no data for ${Math.round(svc.silent_s)} s (stale after ${svc.stale_after_s} s)` : "live";
  const instances = (svc.instances || []).map((i) => `${i.instance || "(no instance id)"}${i.stale ? " (stale)" : ""}`);
  return h("p", { class: svc.stale ? "note stale" : "note", "data-testid": "liveness" },
    `last seen ${fmt.datetime(svc.last_seen)}, ${silent}; instances: ${svc.live_instances} live`,
    instances.length ? ` (${instances.join(", ")})` : "");
}

function emptyHelp() {
  return h("div", {}, h("p", {}, "Nothing received yet. Start your app with the launcher; it reports here by default:"),
    h("pre", {}, "opentelemetry-instrument --service_name shop uvicorn shop.app:app"));
}

function errorTable(groups) {
  return table([["category"], ["type"], ["operation"], ["service"], ["failed requests", "num"], ["users", "num"], ["spans", "num"], ["first seen"], ["last seen"], ["message and context"]],
    groups.map((g) => h("tr", { "data-testid": "error-" + g.fingerprint },
      h("td", {}, g.category), h("td", {}, g.error_type), h("td", {}, g.operation), h("td", {}, g.service),
      h("td", { class: "num", "data-col": "count" }, g.count), h("td", { class: "num", "data-col": "users" }, g.users ?? ""),
      h("td", { class: "num", "data-col": "occurrences" }, g.occurrences ?? ""),
      h("td", {}, fmt.datetime(g.first_seen)), h("td", {}, fmt.datetime(g.last_seen)),
      h("td", {}, h("div", {}, g.message),
        (g.app_frames || []).length ? h("ol", { class: "app-frames", "data-col": "app-frames" }, g.app_frames.map((f) => h("li", {}, `${f.file}:${f.line} in ${f.function}`, f.code ? h("code", {}, " " + f.code) : null))) : null,
        h("details", {}, h("summary", {}, "stack trace and traces"),
        h("pre", {}, g.stacktrace || "(no stack trace)"),
        h("div", {}, "Example traces: ", g.trace_ids.map((t) => [link("#/trace/" + t, t.slice(0, 12)), " "])))))), "errors");
}

function traceTable(traces) {
  return table([["trace"], ["root"], ["services"], ["started"], ["duration", "num"], ["spans", "num"], ["status"]],
    traces.map((t) => h("tr", {}, h("td", {}, link("#/trace/" + t.trace_id, t.trace_id.slice(0, 16))), h("td", {}, t.name),
      h("td", {}, t.services.join(", ")), h("td", {}, fmt.time(t.start)), h("td", { class: "num" }, fmt.ms(t.duration_ms)),
      h("td", { class: "num" }, t.spans), h("td", {}, t.error ? status("critical") : status("ok")))), "traces");
}

function waterfall(data) {
  const children = {};
  for (const sp of data.spans) (children[sp.parent_span_id] = children[sp.parent_span_id] || []).push(sp);
  const ids = new Set(data.spans.map((sp) => sp.span_id));
  const ordered = [];
  const seen = new Set();
  // Each span once, without recursion: parentage that loops (a span its own parent) or runs deep still renders.
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [sp, depth] = stack.pop();
      if (seen.has(sp)) continue;
      seen.add(sp);
      ordered.push([sp, Math.min(depth, 40)]);
      const kids = children[sp.span_id] || [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
    }
  };
  data.spans.filter((sp) => !ids.has(sp.parent_span_id)).forEach(walk);
  data.spans.filter((sp) => !seen.has(sp)).forEach(walk); // spans whose parentage is a loop
  const total = Math.max(data.duration_ms, 0.001);
  return table([["span"], ["service"], ["duration", "num"], ["timeline"]], ordered.map(([sp, depth]) => {
    const g = s("svg", { width: 400, height: 14, class: "waterfall" });
    g.append(s("rect", { class: "bar" + (sp.status_code === 2 ? " error" : ""), y: 2, height: 10,
      x: (400 * sp.offset_ms) / total, width: Math.max((400 * sp.duration_ms) / total, 1) }));
    const exc = sp.events.find((e) => e.name === "exception");
    return h("tr", { "data-testid": "span-" + sp.span_id },
      h("td", {}, "\u00a0\u00a0".repeat(depth), sp.name, exc ? h("div", { class: "error-box" }, `${exc.attributes["exception.type"] || ""}: ${exc.attributes["exception.message"] || ""}`) : null),
      h("td", {}, sp.service), h("td", { class: "num" }, fmt.ms(sp.duration_ms)), h("td", {}, g));
  }), "waterfall");
}

async function ack(id) {
  await fetch("/api/alerts/" + encodeURIComponent(id) + "/ack", { method: "POST", credentials: "same-origin" });
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

async function render() {
  const [name, arg] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const view = views[name] || views.overview;
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.getAttribute("href") === "#/" + (name === "operation" ? "operations" : name === "trace" ? "traces" : name));
  try {
    const content = await view(arg ? decodeURIComponent(arg) : undefined);
    $("view").replaceChildren(...[content].flat(2).filter(Boolean));
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = name;
  } catch (e) {
    $("view").replaceChildren(h("p", { class: "error-box" }, "Could not load: " + e.message));
  }
  refreshServices();
}

function schedule() {
  clearInterval(state.timer);
  if ($("auto").checked) state.timer = setInterval(render, 10000);
}

window.addEventListener("hashchange", render);
document.addEventListener("DOMContentLoaded", () => {
  const saved = new URLSearchParams(location.search);
  if (saved.get("window")) $("window").value = saved.get("window");
  if (saved.get("service")) $("service").append(h("option", { value: saved.get("service"), selected: true }, saved.get("service")));
  $("service").addEventListener("change", render);
  $("window").addEventListener("change", render);
  $("auto").addEventListener("change", schedule);
  schedule();
  render();
});
