// Sends a known set of HTTP requests as the OpenTelemetry JS SDK reports them
// (SERVER spans and the http.server.request.duration histogram, plus two custom
// metrics) to an OTLP/HTTP endpoint, then prints the truth as one JSON line.
//
//   node emit.js --endpoint http://127.0.0.1:4318 --protocol json|protobuf
//                [--service NAME] [--instance ID] [--repeat N] [--linger-ms MS] [--metrics no]
//
// --repeat posts the same finished spans N times, as an exporter's retry does.
// --linger-ms keeps the periodic metric reader exporting (every 200 ms) that
// long before the process stops, so a receiver sees a live service go silent.
// --metrics no sends the spans alone (a receiver then counts from spans).
"use strict";

const { SpanKind, SpanStatusCode, context, trace } = require("@opentelemetry/api");
const { ExportResultCode } = require("@opentelemetry/core");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } = require("@opentelemetry/sdk-trace");
const { MeterProvider, PeriodicExportingMetricReader } = require("@opentelemetry/sdk-metrics");

const EXPORTERS = {
  json: {
    traces: () => require("@opentelemetry/exporter-trace-otlp-http").OTLPTraceExporter,
    metrics: () => require("@opentelemetry/exporter-metrics-otlp-http").OTLPMetricExporter,
  },
  protobuf: {
    traces: () => require("@opentelemetry/exporter-trace-otlp-proto").OTLPTraceExporter,
    metrics: () => require("@opentelemetry/exporter-metrics-otlp-proto").OTLPMetricExporter,
  },
};

// Route, method, status and server-side duration (seconds) of every request.
const REQUESTS = [
  ["GET", "/items/{id}", 200, 0.012], ["GET", "/items/{id}", 200, 0.018], ["GET", "/items/{id}", 404, 0.004],
  ["GET", "/items/{id}", 200, 0.025], ["GET", "/items/{id}", 500, 0.140], ["GET", "/items/{id}", 200, 0.009],
  ["POST", "/orders", 201, 0.230], ["POST", "/orders", 503, 1.200], ["POST", "/orders", 400, 0.003],
  ["POST", "/orders", 201, 0.310], ["POST", "/orders", 502, 0.900], ["POST", "/orders", 401, 0.002],
  ["GET", "/health", 200, 0.001],
];
const BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

function args() {
  const out = { service: "js-shop", instance: "js-1", protocol: "json", repeat: 1, lingerMs: 0, metrics: true };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === "--endpoint") out.endpoint = value.replace(/\/$/, "");
    else if (key === "--protocol") out.protocol = value;
    else if (key === "--service") out.service = value;
    else if (key === "--instance") out.instance = value;
    else if (key === "--repeat") out.repeat = Number(value);
    else if (key === "--linger-ms") out.lingerMs = Number(value);
    else if (key === "--metrics") out.metrics = value !== "no";
    else throw new Error(`unknown argument ${key}`);
  }
  if (!out.endpoint || !EXPORTERS[out.protocol]) {
    throw new Error("usage: node emit.js --endpoint URL --protocol json|protobuf [--service S] [--instance I]");
  }
  return out;
}

// Nanoseconds since the epoch as the SDK's [seconds, nanoseconds] time.
function hrTime(ns) {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

function exportOnce(exporter, spans) {
  return new Promise((resolve, reject) => exporter.export(spans, (result) =>
    result.code === ExportResultCode.SUCCESS ? resolve() : reject(result.error || new Error("export failed"))));
}

async function main() {
  const opts = args();
  const resource = resourceFromAttributes({ "service.name": opts.service, "service.instance.id": opts.instance });
  const memory = new InMemorySpanExporter();
  const tracerProvider = new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  const tracer = tracerProvider.getTracer("otel-monitor-ground-truth");
  const MetricExporter = EXPORTERS[opts.protocol].metrics();
  const reader = new PeriodicExportingMetricReader({
    exporter: new MetricExporter({ url: `${opts.endpoint}/v1/metrics` }),
    exportIntervalMillis: opts.lingerMs > 0 ? 200 : 3_600_000,
    exportTimeoutMillis: opts.lingerMs > 0 ? 200 : 5_000,
  });
  const meterProvider = new MeterProvider({ resource, readers: opts.metrics ? [reader] : [] });
  const meter = meterProvider.getMeter("otel-monitor-ground-truth");
  const duration = meter.createHistogram("http.server.request.duration", {
    unit: "s", description: "Duration of HTTP server requests.", advice: { explicitBucketBoundaries: BOUNDARIES },
  });
  const orders = meter.createCounter("shop.orders.placed", { unit: "{order}" });
  const queue = meter.createGauge("shop.queue.depth", { unit: "{job}" });

  const truth = { service: opts.service, instance: opts.instance, protocol: opts.protocol, requests: [], traces: [] };
  let start = BigInt(Date.now() - 5_000) * 1_000_000n;
  for (const [method, route, status, seconds] of REQUESTS) {
    const end = start + BigInt(Math.round(seconds * 1e9));
    const attributes = {
      "http.request.method": method, "http.route": route, "http.response.status_code": status,
      "url.path": route.replace("{id}", "42"), "url.scheme": "http",
    };
    if (status >= 500) attributes["error.type"] = String(status);
    const span = tracer.startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, startTime: hrTime(start), attributes });
    // A child span of the request's own work: it must not count as a call.
    const child = tracer.startSpan("load item", { kind: SpanKind.INTERNAL, startTime: hrTime(start) },
      trace.setSpan(context.active(), span));
    child.end(hrTime(start + (end - start) / 2n));
    // Semantic conventions: a server span fails on 5xx only; 4xx leaves the status unset.
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(hrTime(end));
    const metricAttributes = { "http.request.method": method, "http.route": route, "http.response.status_code": status };
    if (status >= 500) metricAttributes["error.type"] = String(status);
    duration.record(seconds, metricAttributes);
    if (route === "/orders" && status < 300) orders.add(1, { "shop.payment": "card" });
    const ctx = span.spanContext();
    truth.requests.push({ method, route, operation: `${method} ${route}`, status, seconds });
    truth.traces.push({ trace_id: ctx.traceId, span_id: ctx.spanId, child_span_id: child.spanContext().spanId });
    start = end + 1_000_000n;
  }
  queue.record(7);

  const SpanExporter = EXPORTERS[opts.protocol].traces();
  const spanExporter = new SpanExporter({ url: `${opts.endpoint}/v1/traces` });
  const finished = memory.getFinishedSpans();
  for (let i = 0; i < opts.repeat; i++) await exportOnce(spanExporter, finished);
  if (opts.metrics) await meterProvider.forceFlush();
  if (opts.lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, opts.lingerMs));
  await meterProvider.shutdown();
  await spanExporter.shutdown();
  await tracerProvider.shutdown();

  const operations = {};
  for (const r of truth.requests) {
    const op = (operations[r.operation] ||= { calls: 0, errors: 0 });
    op.calls += 1;
    op.errors += r.status >= 500 ? 1 : 0;
  }
  truth.operations = operations;
  truth.spans_sent = finished.length * opts.repeat;
  truth.custom_metrics = {
    "shop.orders.placed": { kind: "sum", value: truth.requests.filter((r) => r.route === "/orders" && r.status < 300).length },
    "shop.queue.depth": { kind: "gauge", value: 7 },
  };
  process.stdout.write(JSON.stringify(truth) + "\n");
}

main().catch((err) => {
  process.stderr.write(`emit.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
