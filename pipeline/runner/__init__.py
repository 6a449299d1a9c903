"""The run: takes input roots, a plan and keys; discovers files, processes them in batches on
Dask (or in process), stages, verifies and publishes or quarantines each one, and records the
outcome in the manifest, the ledger, the mapping and the run record. Dask stays here and in cli.
"""
