"""Replication, independent of the transport: what one committed ledger change is, how the
writer captures it at commit (an outbox in the ledger itself, the durable cursor beside it), and
how a replica applies it to its own copy of the ledger.

The NATS JetStream side (publishing, snapshots, the directory) lives in ``replica_svc``.
"""
