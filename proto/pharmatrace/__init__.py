"""The pharmatrace API package: the protobuf messages and gRPC stubs of pharmatrace.v1."""
