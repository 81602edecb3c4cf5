"""Results: per-request records, run folders, summaries, plots and the HTML report.

Modules: `records` (InvocationRecord, RecordWriter), `rundir`, `stats`, `summary`, `plots`,
`phases`, `html`. Nothing heavy is imported here.
"""
