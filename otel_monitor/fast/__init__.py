"""Fast paths that depend on a dependency's private internals.

Each is switchable and falls back to the public path; only the launcher imports them."""
