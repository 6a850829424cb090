"""The pharmatrace domain: code formats, signing keys, statuses and rules, regions, the ledger.

Pure Python with no grpc; ``tracecore.ledger`` is the only place that imports lmdb.
"""
