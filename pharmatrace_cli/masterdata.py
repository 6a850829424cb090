"""Master data commands: tenants, products, batches and parties."""

from __future__ import annotations

import argparse
from typing import Any

from pharmatrace_cli import links
from pharmatrace_cli.command import (
    EXIT_OK,
    CliError,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    message_doc,
)


def register(commands: Any) -> Any:
    """Adds tenant, product, batch and party to the command group; returns the `tenant`
    group, where the service's commands add `tenant migrate`."""
    tenant = commands.add_parser("tenant", help="Create and list tenants.").add_subparsers(
        metavar="ACTION")
    create = add_command(tenant, "create", "Create a tenant: its own ledger and signing keys.",
                     _tenant_create, tenant=False)
    create.add_argument("tenant_id")
    create.add_argument("--name")
    create.add_argument("--tz", default="", metavar="ZONE",
                        help="IANA time zone whose midnight cuts the tenant's days in reports "
                             "and date filters, e.g. Asia/Shanghai (default: the server's "
                             "default_time_zone setting)")
    add_output_options(add_command(tenant, "list", "List tenants.", _tenant_list, tenant=False,
                                   example="pharmatrace tenant list --csv"))

    product = commands.add_parser("product", help="Register and list products.").add_subparsers(
        metavar="ACTION")
    add = add_command(product, "add", "Register a product.", _product_add)
    add.add_argument("--gtin")
    add.add_argument("--nmpa-id", help="7-digit NMPA drug identifier (药品标识码)")
    add.add_argument("--scheme", choices=("gs1", "nmpa"),
                     help="code scheme (default: gs1 if --gtin is given)")
    add.add_argument("--name", required=True)
    add.add_argument("--form")
    add.add_argument("--strength")
    add.add_argument("--pack-size", type=int)
    add.add_argument("--approval-number", help="批准文号")
    add.add_argument("--generic-name", help="通用名")
    add.add_argument("--pack-spec", help="包装规格 as printed, e.g. '0.25g×24粒/盒'")
    add.add_argument("--dosage-form", dest="form", help="剂型 (same as --form)")
    add.add_argument("--mah", help="marketing authorisation holder (上市许可持有人)")
    add.add_argument("--manufacturer")
    add.add_argument("--hierarchy", metavar="LEVEL:QTY[:GTIN],...",
                     help="packaging hierarchy (包装层级, 包装比例), lowest first, e.g. "
                          "'bundle:10,case:12,pallet:40': 10 units a bundle, 12 bundles a case, "
                          "40 cases a pallet; a level's own GTIN after a second colon")
    add_output_options(add_command(product, "list", "List products.", _product_list,
                                   example="pharmatrace product list --tenant acme --json"))
    links.register(product, add_command, endpoints)

    batch = commands.add_parser("batch", help="Add batches.").add_subparsers(metavar="ACTION")
    badd = add_command(batch, "add", "Add a production batch (lot) of a product.", _batch_add)
    badd.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    badd.add_argument("--lot", required=True)
    badd.add_argument("--expires", required=True, help="YYYY-MM-DD")
    badd.add_argument("--manufactured", help="YYYY-MM-DD")
    badd.add_argument("--material", action="append",
                      help="MATERIAL,SUPPLIER,SUPPLIER_LOT[,QUANTITY] (repeatable)")
    badd.add_argument("--region", action="append",
                      help="authorised sales region, GB/T 2260 prefix (repeatable)")

    party = commands.add_parser("party", help="Add parties.").add_subparsers(metavar="ACTION")
    padd = add_command(party, "add", "Add a party: a site that holds packs.", _party_add)
    padd.add_argument("--id", dest="party_id", required=True)
    padd.add_argument("--name", required=True)
    padd.add_argument("--kind", choices=_PARTY_KINDS, required=True)
    padd.add_argument("--region", help="GB/T 2260 six-digit code")
    padd.add_argument("--gln")
    padd.add_argument("--authorised-region", action="append",
                      help="GB/T 2260 prefix it may sell into (repeatable)")
    return tenant


def _tenant_create(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    response = endpoints(args).admin().CreateTenant(
        pb.CreateTenantRequest(tenant=args.tenant_id, name=args.name or args.tenant_id,
                               time_zone=args.tz))
    print(f"tenant {response.tenant} created (signing key {response.active_key_id})")
    if response.admin_token:
        print(f"admin token (shown once, keep it secret): {response.admin_token}")
    return EXIT_OK


def _tenant_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    with Rows(args.output, ("TENANT",)) as rows:
        for tenant in endpoints(args).admin().ListTenants(pb.ListTenantsRequest()).tenants:
            rows.write({"tenant": tenant}, (tenant,))
    return EXIT_OK


def _product_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    scheme = {"gs1": cpb.SCHEME_GS1, "nmpa": cpb.SCHEME_NMPA, None: cpb.SCHEME_UNSPECIFIED}
    product = cpb.Product(
        gtin=args.gtin or "", nmpa_id=args.nmpa_id or "", scheme=scheme[args.scheme],
        name=args.name, form=args.form or "", strength=args.strength or "",
        pack_size=args.pack_size or 0, approval_number=args.approval_number or "",
        generic_name=args.generic_name or "", pack_spec=args.pack_spec or "",
        mah=args.mah or "", manufacturer=args.manufacturer or "",
        hierarchy=_hierarchy(args.hierarchy or ""),
    )
    response = endpoints(args).admin().RegisterProduct(
        pb.RegisterProductRequest(tenant=args.tenant, product=product))
    p = response.product
    print(f"product {p.gtin or p.nmpa_id} registered: {p.name} "
          f"({cpb.Scheme.Name(p.scheme).removeprefix('SCHEME_')})")
    return EXIT_OK


def _hierarchy(text: str) -> list[Any]:
    """``bundle:10,case:12:09501101530010`` as PackLevel messages; the server checks them."""
    from pharmatrace.v1 import common_pb2 as cpb

    levels = []
    for spec in filter(None, (s.strip() for s in text.split(","))):
        parts = spec.split(":")
        if (len(parts) not in (2, 3) or parts[0] not in ("bundle", "case", "pallet")
                or not parts[1].isdigit()):
            raise CliError(f"--hierarchy: {spec!r} is not LEVEL:QUANTITY[:GTIN] with LEVEL one "
                           "of bundle, case, pallet")
        level = cpb.PackagingLevel.Value(f"PACKAGING_LEVEL_{parts[0].upper()}")
        levels.append(cpb.PackLevel(level=level, quantity=int(parts[1]),
                                    gtin=parts[2] if len(parts) == 3 else ""))
    return levels


def _product_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    stub = endpoints(args).admin()
    token = ""
    with Rows(args.output, ("GTIN", "NMPA", "NAME"), widths=(14, 7, 0)) as rows:
        while True:
            page = stub.ListProducts(pb.ListProductsRequest(tenant=args.tenant,
                                                            page_token=token))
            for p in page.products:
                rows.write(message_doc(p), (p.gtin or "-", p.nmpa_id or "-", p.name))
            token = page.next_page_token
            if not token:
                return EXIT_OK


def _batch_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    materials = []
    for spec in args.material or []:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (3, 4):
            raise CliError("--material takes MATERIAL,SUPPLIER,SUPPLIER_LOT[,QUANTITY]")
        materials.append(cpb.MaterialLot(material=parts[0], supplier=parts[1],
                                         supplier_lot=parts[2],
                                         quantity=parts[3] if len(parts) == 4 else ""))
    batch = cpb.Batch(product=args.product, lot=args.lot, manufactured_on=args.manufactured or "",
                      expires_on=args.expires, materials=materials,
                      authorised_regions=args.region or [])
    response = endpoints(args).admin().AddBatch(pb.AddBatchRequest(tenant=args.tenant,
                                                                     batch=batch))
    print(f"batch {response.batch.lot} of {response.batch.product} added "
          f"(expires {response.batch.expires_on})")
    return EXIT_OK


_PARTY_KINDS = ("plant", "warehouse", "distributor", "pharmacy", "hospital")


def _party_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    party = cpb.Party(party_id=args.party_id, name=args.name, gln=args.gln or "",
                      region=args.region or "",
                      kind=cpb.PartyKind.Value(f"PARTY_KIND_{args.kind.upper()}"),
                      authorised_regions=args.authorised_region or [])
    response = endpoints(args).admin().AddParty(pb.AddPartyRequest(tenant=args.tenant,
                                                                    party=party))
    print(f"party {response.party.party_id} added: {response.party.name}")
    return EXIT_OK
