"""The OTLP wire format: a protobuf encoder for export and a decoder for the console.

Nothing here imports the rest of otel_monitor."""
