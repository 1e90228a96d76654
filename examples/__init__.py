"""Example services that otel-monitor instruments, demos and benchmarks."""
