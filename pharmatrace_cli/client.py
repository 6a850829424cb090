"""Connections to the two services, shared by every client command."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from pharmatrace.v1 import (
    admin_pb2_grpc,
    issuance_pb2_grpc,
    lifecycle_pb2_grpc,
    trace_pb2_grpc,
    verification_pb2_grpc,
)

from tracecore.files import MAX_PEM_BYTES, MAX_TOKEN_BYTES, read_bounded

ISSUE_ADDR_ENV = "PHARMATRACE_ISSUE_ADDR"
VERIFY_ADDR_ENV = "PHARMATRACE_VERIFY_ADDR"
DEFAULT_ISSUE_ADDR = "127.0.0.1:50051"
DEFAULT_VERIFY_ADDR = "127.0.0.1:50052"
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


TOKEN_ENV = "PHARMATRACE_TOKEN"  # noqa: S105 - the variable's name, not a token


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the API token to every call, on plaintext and TLS channels alike."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class Endpoints:
    """Where the services are and how to reach them (plaintext unless a CA is given)."""

    issue: str
    verify: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, issue: str | None, verify: str | None, ca: Path | None = None,
                cert: Path | None = None, key: Path | None = None,
                token_file: Path | None = None) -> Endpoints:
        token = os.environ.get(TOKEN_ENV) or None
        if token_file is not None:
            content = read_bounded(token_file, MAX_TOKEN_BYTES, f"token file {token_file}")
            token = content.decode().strip()
        return cls(
            issue or os.environ.get(ISSUE_ADDR_ENV) or DEFAULT_ISSUE_ADDR,
            verify or os.environ.get(VERIFY_ADDR_ENV) or DEFAULT_VERIFY_ADDR,
            ca, cert, key, token,
        )

    def channel(self, address: str) -> grpc.Channel:
        if self.ca is None:
            channel = grpc.insecure_channel(address, options=_OPTIONS)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read_pem(self.ca),
                private_key=_read_pem(self.key) if self.key else None,
                certificate_chain=_read_pem(self.cert) if self.cert else None,
            )
            channel = grpc.secure_channel(address, credentials, options=_OPTIONS)
        if self.token:
            channel = grpc.intercept_channel(channel, _Bearer(self.token))
        return channel

    def admin(self) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(self.channel(self.issue))

    def issuance(self) -> issuance_pb2_grpc.CodeIssuanceStub:
        return issuance_pb2_grpc.CodeIssuanceStub(self.channel(self.issue))

    def lifecycle(self) -> lifecycle_pb2_grpc.LifecycleStub:
        return lifecycle_pb2_grpc.LifecycleStub(self.channel(self.issue))

    def verification(self) -> verification_pb2_grpc.VerificationStub:
        return verification_pb2_grpc.VerificationStub(self.channel(self.verify))

    def trace(self) -> trace_pb2_grpc.TraceStub:
        return trace_pb2_grpc.TraceStub(self.channel(self.verify))


def _read_pem(path: Path) -> bytes:
    # The message goes to the user at the terminal, so it may name the whole path.
    return read_bounded(path, MAX_PEM_BYTES, str(path))
