"""Results: per-request records, run folders, summaries, plots and the HTML report.

Modules: `records` (RecordWriter, merge_parts), `rundir`, `stats`, `summary`, `plots`,
`html`. Nothing heavy is imported here.
"""
