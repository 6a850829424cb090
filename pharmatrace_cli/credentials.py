"""Credential commands: API tokens, signing keys, development TLS certificates, the operator
token."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import (
    EXIT_OK,
    CliError,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    message_doc,
)


def register(commands: Any) -> None:
    """Adds token, keys, certs and operator to the command group."""
    token = commands.add_parser("token", help="API tokens of a tenant.").add_subparsers(
        metavar="ACTION")
    tcreate = add_command(token, "create", "Create an API token (printed once).", _token_create)
    tcreate.add_argument("--role", choices=_ROLES, required=True)
    tcreate.add_argument("--party", help="the party the credential acts for")
    tcreate.add_argument("--label")
    tcreate.add_argument("--expires-days", type=int)
    add_output_options(add_command(token, "list", "List credentials.", _token_list,
                                   example="pharmatrace token list --tenant acme --csv"))
    trevoke = add_command(token, "revoke", "Revoke a credential.", _token_revoke)
    trevoke.add_argument("credential_id")

    keys = add_command(commands, "keys", "Signing keys: list, rotate, retire, revoke.", _keys)
    keys.add_argument("action", choices=("list", "rotate", "retire", "revoke"))
    keys.add_argument("key_id", type=int, nargs="?")

    certs = commands.add_parser("certs", help="Development TLS certificates.").add_subparsers(
        metavar="ACTION")
    cinit = add_command(certs, "init", "Create a development CA, server and client "
                        "certificates.", _certs_init, client=False, tenant=False)
    cinit.add_argument("directory")
    cinit.add_argument("--host", action="append", help="server name or address (repeatable)")
    cinit.add_argument("--client", action="append", help="client certificate name (repeatable)")
    cinit.add_argument("--force", action="store_true", help="overwrite existing files")

    operator = commands.add_parser("operator", help="The platform operator.").add_subparsers(
        metavar="ACTION")
    otoken = add_command(operator, "token", "Create an operator token (creates tenants) in a "
                         "data directory; printed once.", _operator_token, client=False,
                         tenant=False)
    otoken.add_argument("--data", default="./data")
    otoken.add_argument("--label")


_ROLES = ("admin", "line", "distributor", "pharmacy", "regulator", "public")


def _token_create(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    expires = int((time.time() + args.expires_days * 86_400) * 1000) if args.expires_days else 0
    response = endpoints(args).admin().CreateToken(pb.CreateTokenRequest(
        tenant=args.tenant, role=pb.Role.Value(f"ROLE_{args.role.upper()}"),
        party_id=args.party or "", label=args.label or "", expires_at_ms=expires))
    print(f"credential {response.credential.credential_id} ({args.role})", file=sys.stderr)
    print(response.token)
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    with Rows(args.output, ("CREDENTIAL", "ROLE", "STATE", "PARTY", "CERTIFICATE", "LABEL")
              ) as rows:
        for c in endpoints(args).admin().ListTokens(pb.ListTokensRequest(tenant=args.tenant)
                                                    ).credentials:
            role = pb.Role.Name(c.role).removeprefix("ROLE_").lower()
            state = "revoked" if c.revoked else (
                "expired" if c.expires_at_ms and c.expires_at_ms < time.time() * 1000
                else "active")
            rows.write({**message_doc(c), "state": state},
                       (c.credential_id, role, state, c.party_id or "-",
                        c.certificate_cn or "-", c.label))
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    endpoints(args).admin().RevokeToken(pb.RevokeTokenRequest(
        tenant=args.tenant, credential_id=args.credential_id))
    print(f"credential {args.credential_id} revoked")
    return EXIT_OK


def _keys(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    admin = endpoints(args).admin()
    if args.action == "list":
        for k in admin.ListKeys(pb.ListKeysRequest(tenant=args.tenant)).keys:
            print(f"key {k.key_id:4}  {k.state:8}  since "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(k.changed_at_ms / 1000))}")
        return EXIT_OK
    if args.action == "rotate":
        response = admin.RotateKey(pb.RotateKeyRequest(tenant=args.tenant))
    else:
        if args.key_id is None:
            raise CliError(f"keys {args.action} needs a key id")
        call = admin.RetireKey if args.action == "retire" else admin.RevokeKey
        response = call(pb.KeyRequest(tenant=args.tenant, key_id=args.key_id))
    print(f"key {response.changed.key_id} is {response.changed.state}; "
          f"active key {response.active_key_id}")
    return EXIT_OK


def _certs_init(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracerpc.certs import init_dev_pki

    try:
        pki = init_dev_pki(Path(args.directory), hosts=args.host or ("localhost", "127.0.0.1",
                                                                        "::1"),
                           clients=args.client or ("line-1",), overwrite=args.force)
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    print(f"development CA, server and client certificates in {args.directory}:")
    print(f"  serve --tls-cert {pki.server} --tls-key {pki.server_key} [--client-ca {pki.ca}]")
    for client in pki.clients:
        print(f"  client {client.name}: --ca {pki.ca} --cert {client.certificate} "
              f"--key {client.key}")
    return EXIT_OK


def _operator_token(args: argparse.Namespace) -> int:
    from tracecore.clock import now_ms
    from tracecore.credentials import Role
    from tracecore.keys import KeySource
    from tracecore.ledger.tenants import DataDir

    data = DataDir(Path(args.data), KeySource.dev())  # the operator store holds no signing keys
    try:
        credential, token = data.operator().create_token(Role.OPERATOR, "", args.label or "",
                                                         0, now_ms())
    finally:
        data.close()
    print(f"operator credential {credential.credential.credential_id}", file=sys.stderr)
    print(token)
    return EXIT_OK
