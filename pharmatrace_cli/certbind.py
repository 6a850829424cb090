"""`certs bind`: a client certificate acts as a credential of a tenant, pinned by its SHA-256
and issuer (binding it in another tenant is a binding of its own)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import EXIT_OK, CliError, add_command, endpoints, subgroup

_ROLES = ("admin", "line", "distributor", "pharmacy", "regulator")


def register(commands: Any) -> None:
    """Adds certs bind to the certs group."""
    certs = subgroup(commands, "certs", "Development TLS certificates.")
    bind = add_command(certs, "bind", "Bind a client certificate (PEM file) to a role of the "
                       "tenant: exactly that certificate, from its issuer, authenticates.",
                       _bind, example="pharmatrace certs bind --tenant acme --role line "
                       "--party PLANT-1 client-line-1.pem")
    bind.add_argument("certificate", help="the client certificate, PEM")
    bind.add_argument("--role", choices=_ROLES, required=True)
    bind.add_argument("--party", help="the party the credential acts for")
    bind.add_argument("--label")
    bind.add_argument("--san-uri", help="bind the subject alternative name URI this "
                      "certificate names (e.g. spiffe://example.org/line-1) with its issuer "
                      "instead: renewed certificates keep working")


def _bind(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    try:
        pem = Path(args.certificate).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{args.certificate}: cannot be read as a PEM file ({exc})") from None
    response = endpoints(args).admin().BindCertificate(pb.BindCertificateRequest(
        tenant=args.tenant, certificate_pem=pem, role=pb.Role.Value(f"ROLE_{args.role.upper()}"),
        party_id=args.party or "", label=args.label or "", san_uri=args.san_uri or ""))
    credential = response.credential
    bound = (f"any certificate naming {credential.certificate_san_uri}"
             if credential.certificate_san_uri else f"certificate {credential.certificate_sha256}")
    print(f"credential {credential.credential_id} ({args.role}): {bound} issued by "
          f"{credential.certificate_issuer}", file=sys.stderr)
    print(credential.credential_id)
    return EXIT_OK
