"""gRPC plumbing shared by both services: one interceptor, metrics, server lifecycle."""
