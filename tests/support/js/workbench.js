// A JS SDK service taking part in a trace another service started: one SERVER span
// (child of --parent), a DB CLIENT span, a log record in the span's context, and the
// http.server.request.duration histogram, all over OTLP/HTTP JSON. Prints the ids as JSON.
//
//   node workbench.js --endpoint http://127.0.0.1:4318 --parent <trace id>-<span id> [--service NAME]
"use strict";

const { SpanKind, context, trace, TraceFlags } = require("@opentelemetry/api");
const { SeverityNumber } = require("@opentelemetry/api-logs");
const { defaultResource, resourceFromAttributes } = require("@opentelemetry/resources");
const { SimpleSpanProcessor, TracerProvider } = require("@opentelemetry/sdk-trace");
const { MeterProvider, PeriodicExportingMetricReader } = require("@opentelemetry/sdk-metrics");
const { LoggerProvider, SimpleLogRecordProcessor } = require("@opentelemetry/sdk-logs");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
const { OTLPMetricExporter } = require("@opentelemetry/exporter-metrics-otlp-http");
const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-http");

function args() {
  const out = { service: "js-inventory" };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === "--endpoint") out.endpoint = argv[i + 1].replace(/\/$/, "");
    else if (argv[i] === "--parent") out.parent = argv[i + 1];
    else if (argv[i] === "--service") out.service = argv[i + 1];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!out.endpoint || !out.parent) throw new Error("usage: node workbench.js --endpoint URL --parent TRACEID-SPANID");
  return out;
}

async function main() {
  const opts = args();
  const [traceId, spanId] = opts.parent.split("-");
  // The SDK's default resource carries telemetry.sdk.*: the console shows it.
  const resource = defaultResource().merge(resourceFromAttributes({ "service.name": opts.service, "service.instance.id": "js-1" }));
  const tracerProvider = new TracerProvider({
    resource, spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${opts.endpoint}/v1/traces` }) })],
  });
  const loggerProvider = new LoggerProvider({
    resource, processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `${opts.endpoint}/v1/logs` }) })],
  });
  const meterProvider = new MeterProvider({ resource, readers: [new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url: `${opts.endpoint}/v1/metrics` }), exportIntervalMillis: 3_600_000 })] });
  const tracer = tracerProvider.getTracer("workbench");
  const logger = loggerProvider.getLogger("workbench");
  const duration = meterProvider.getMeter("workbench").createHistogram("http.server.request.duration", { unit: "s" });

  const parent = trace.setSpanContext(context.active(), { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
  const server = tracer.startSpan("GET /stock/{sku}", { kind: SpanKind.SERVER, attributes: {
    "http.request.method": "GET", "http.route": "/stock/{sku}", "http.response.status_code": 200 } }, parent);
  const inServer = trace.setSpan(parent, server);
  const db = tracer.startSpan("SELECT inventory", { kind: SpanKind.CLIENT, attributes: {
    "db.system.name": "postgresql", "db.query.text": "SELECT qty FROM stock WHERE sku = $1" } }, inServer);
  db.end();
  logger.emit({ severityNumber: SeverityNumber.WARN, severityText: "WARN", body: "stock low for sku 42",
    attributes: { "sku": "42" }, context: inServer });
  server.end();
  duration.record(0.012, { "http.request.method": "GET", "http.route": "/stock/{sku}", "http.response.status_code": 200 });

  await meterProvider.forceFlush();
  await loggerProvider.forceFlush();
  await tracerProvider.forceFlush();
  await Promise.all([meterProvider.shutdown(), loggerProvider.shutdown(), tracerProvider.shutdown()]);
  process.stdout.write(JSON.stringify({
    service: opts.service, trace_id: traceId, server_span_id: server.spanContext().spanId,
    db_span_id: db.spanContext().spanId, log_body: "stock low for sku 42",
  }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`workbench.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
