"""Runtimes start and stop instances: `process` (embedded default) and `docker`."""
