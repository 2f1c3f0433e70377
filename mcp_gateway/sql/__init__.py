"""Read-only SQL against a cluster's PostgreSQL: the parser guard, the credentials, the executor, the checks.

Defence in depth, no single layer trusted (docs/diagnosis.md): a dedicated login role the operator
provisions, credentials mounted as files (the gateway reads no Secret), a real-parser guard, libpq
startup options, a READ ONLY transaction that is always rolled back, and row/byte/time caps.
"""
