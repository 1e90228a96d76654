"""Ground truth: traffic whose counts, statuses and latencies the client knows, checked against every figure shown."""
