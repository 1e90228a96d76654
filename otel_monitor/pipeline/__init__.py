"""The telemetry pipeline on the SDK: processors, the export decision, exporters, instruments."""
