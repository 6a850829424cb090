"""Replication over NATS JetStream: the writer publishes each tenant's change records to a stream
of its own (``publisher``); names of streams and headers are in ``streams``."""
