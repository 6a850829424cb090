"""Who may call what, over real gRPC with authentication on: every RPC of both servers against
the one RPC x role table, tokens (revoked, expired, wrong, malformed), party-bound credentials,
client certificates over mutual TLS, public verification and its rate limit, the open services.

The issuance server runs in this process on an event loop thread (as in
tests/integration/conftest.py), so tests can read its ledgers; verification is served by real
worker processes: one with public verification off (the table walk), one with it on and a tight
public rate (the public tests). The servers start once for the package (``conftest.py``).
"""
