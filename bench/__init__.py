"""`backbone bench`: the backbone's performance through the real broker (issue 8).

One module per measurement (`ceiling`, `pipeline`, `latency`, `ingest`, `backfill`, `memory`),
the synthetic agency mix they share (`mix`), the load generator (`load`), the deployment they
run against (`deployment`), and the report (`report`, `plot`); `run` puts them in order.
"""
