"""Cold-start experiments: `profile` (forced cold starts split into phases) and `sweep`
(cold-start probability vs concurrency). One module per experiment."""
