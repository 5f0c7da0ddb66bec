"""The cube on disk or in a bucket: the store and its state, schema, chunk reads, output checks, runs, upgrade,
patch index and integrity check."""
