"""Health checks: the registry, the built-in checks and the HTTP endpoints."""
