"""Alerting: Prometheus rules generated from the SLOs."""
