"""Settings: the one table of settings, the config file, and how each value is resolved."""
