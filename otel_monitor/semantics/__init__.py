"""What telemetry means: operations, error classes and fingerprints, journeys, redaction, SLOs.

Pure rules: nothing here imports the OpenTelemetry SDK."""
