"""The launcher: distro, configurator, instrumentation loading, lifecycle."""
