"""`pharmatrace product link add / list / remove`: the links a product's Digital Link resolves to
besides the check page (product page, leaflet, recall status, SmPC...)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

EXIT_OK = 0


def register(product: Any, add_command: Callable[..., argparse.ArgumentParser],
             endpoints: Callable[[argparse.Namespace], Any]) -> None:
    """Adds the ``link`` actions under the ``product`` command group."""
    links = product.add_parser(
        "link", help="Links the resolver offers for a product.").add_subparsers(metavar="ACTION")
    add = add_command(links, "add", "Add a link the GS1 Digital Link resolver offers for a "
                      "product.", lambda args: _add(args, endpoints))
    add.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    add.add_argument("--type", required=True, dest="link_type",
                     help="GS1 link type: gs1:pip, gs1:epil, gs1:recallStatus, gs1:smpc, ...")
    add.add_argument("--href", required=True, help="absolute http(s) URL of the target")
    add.add_argument("--lang", default="", help="language of the target, e.g. en, zh-CN")
    add.add_argument("--title", default="", help="a title for people")
    remove = add_command(links, "remove", "Remove a link the resolver offers for a product.",
                         lambda args: _remove(args, endpoints))
    remove.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    remove.add_argument("--type", required=True, dest="link_type", help="its GS1 link type")
    remove.add_argument("--lang", default="", help="its language (none: the link without one)")
    remove.add_argument("--href", default="",
                        help="its URL, when the product has several of that type and language")
    show = add_command(links, "list", "List a product's links.",
                       lambda args: _list(args, endpoints))
    show.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")


def _add(args: argparse.Namespace, endpoints: Callable[[argparse.Namespace], Any]) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    response = endpoints(args).admin().AddProductLink(pb.AddProductLinkRequest(
        tenant=args.tenant, product=args.product, link=cpb.ProductLink(
            link_type=_compact(args.link_type), href=args.href, lang=args.lang,
            title=args.title)))
    print(f"product {args.product} now has {len(response.product.links)} link(s) besides "
          "its check page")
    return EXIT_OK


def _remove(args: argparse.Namespace, endpoints: Callable[[argparse.Namespace], Any]) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    response = endpoints(args).admin().RemoveProductLink(pb.RemoveProductLinkRequest(
        tenant=args.tenant, product=args.product, link_type=_compact(args.link_type),
        lang=args.lang, href=args.href))
    print(f"removed {response.removed.link_type} {response.removed.href}; product "
          f"{args.product} has {len(response.product.links)} link(s) left besides its check page")
    return EXIT_OK


def _compact(link_type: str) -> str:
    """``gs1:epil`` for ``epil`` as well."""
    return link_type if ":" in link_type else f"gs1:{link_type}"


def _list(args: argparse.Namespace, endpoints: Callable[[argparse.Namespace], Any]) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    product = endpoints(args).admin().GetProduct(
        pb.GetProductRequest(tenant=args.tenant, product=args.product)).product
    for link in product.links:
        print("\t".join((link.link_type, link.lang or "-", link.href, link.title)))
    return EXIT_OK
