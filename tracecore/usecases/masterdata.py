"""Master data: the products a tenant makes, their batches, and the parties of its supply chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pharmatrace.v1 import common_pb2 as cpb

from tracecore import masterdata
from tracecore.clock import utc_date
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.declare import ADMIN, READERS, Scope, use_case
from tracecore.usecases.writeside import WriteSide

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the token of the next ("" on the last)."""

    items: list[T]
    next_page_token: str


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def register_product(side: WriteSide, caller: Principal, tenant: str,
                           product: cpb.Product) -> cpb.Product:
    """A product, registered under its GTIN or NMPA drug identifier."""
    ledger = side.data.get(tenant).ledger
    return await side.writer.run(tenant, ledger.register_product, product, side.clock())


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def add_product_link(side: WriteSide, caller: Principal, tenant: str, product: str,
                           link: cpb.ProductLink) -> cpb.Product:
    """Adds a link the resolver offers for a registered product; the same type, language and
    URL twice is refused."""
    canonical = masterdata.product_link(link)

    def change(current: cpb.Product) -> cpb.Product:
        if len(current.links) >= masterdata.MAX_LINKS:
            raise InvalidArgument(f"a product has at most {masterdata.MAX_LINKS} links",
                                  field="link")
        for existing in current.links:
            if (existing.link_type, existing.lang, existing.href) == (
                    canonical.link_type, canonical.lang, canonical.href):
                raise InvalidArgument("the product already has this link", field="link.href")
        updated = cpb.Product()
        updated.CopyFrom(current)
        updated.links.append(canonical)
        return updated

    ledger = side.data.get(tenant).ledger
    return await side.writer.run(tenant, ledger.update_product, product, change)


@dataclass(frozen=True, slots=True)
class Removed:
    """A product after one of its links was removed, and that link."""

    product: cpb.Product
    link: cpb.ProductLink


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def remove_product_link(side: WriteSide, caller: Principal, tenant: str, product: str,
                              link_type: str, lang: str, href: str = "") -> Removed:
    """Removes the product's link of this type and language (and ``href``, needed only when
    several links share them); NotFound when there is none."""
    kind = masterdata.link_kind(link_type, lang)
    removed: list[cpb.ProductLink] = []

    def change(current: cpb.Product) -> cpb.Product:
        removed.clear()
        matching = [i for i, link in enumerate(current.links)
                    if (link.link_type, link.lang) == kind and (not href or link.href == href)]
        if not matching:
            raise NotFound(f"product {product} has no {kind[0]} link"
                           + (f" in {kind[1]}" if kind[1] else " without a language")
                           + (f" to {href}" if href else ""))
        if len(matching) > 1:
            raise InvalidArgument(f"product {product} has {len(matching)} such links: name the "
                                  "one to remove by its href", field="href")
        updated = cpb.Product()
        updated.CopyFrom(current)
        removed.append(updated.links.pop(matching[0]))
        return updated

    ledger = side.data.get(tenant).ledger
    updated = await side.writer.run(tenant, ledger.update_product, product, change)
    return Removed(updated, removed[0])


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def get_product(side: WriteSide, caller: Principal, tenant: str, identifier: str) -> cpb.Product:
    return side.data.get(tenant).ledger.product(identifier)[1]


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def list_products(side: WriteSide, caller: Principal, tenant: str, page_size: int,
                  page_token: str) -> Page[cpb.Product]:
    return Page(*side.data.get(tenant).ledger.products(page_size, page_token))


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def add_batch(side: WriteSide, caller: Principal, tenant: str, batch: cpb.Batch
                    ) -> cpb.Batch:
    """A batch of a registered product, with its expiry and the material lots it used; one
    already expired is refused."""
    ledger = side.data.get(tenant).ledger
    masterdata.not_expired(batch.expires_on, utc_date(side.clock()), "batch.expires_on")
    return await side.writer.run(tenant, ledger.add_batch, batch, side.clock())


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def get_batch(side: WriteSide, caller: Principal, tenant: str, product: str, lot: str
              ) -> cpb.Batch:
    return side.data.get(tenant).ledger.batch(product, lot)[1]


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def list_batches(side: WriteSide, caller: Principal, tenant: str, product: str, page_size: int,
                 page_token: str) -> Page[cpb.Batch]:
    return Page(*side.data.get(tenant).ledger.batches(product, page_size, page_token))


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def add_party(side: WriteSide, caller: Principal, tenant: str, party: cpb.Party
                    ) -> cpb.Party:
    """A party of the supply chain: a plant, distributor or pharmacy, and where it may sell."""
    ledger = side.data.get(tenant).ledger
    return await side.writer.run(tenant, ledger.add_party, party, side.clock())


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def get_party(side: WriteSide, caller: Principal, tenant: str, party_id: str) -> cpb.Party:
    return side.data.get(tenant).ledger.party(party_id)[1]


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def list_parties(side: WriteSide, caller: Principal, tenant: str, page_size: int,
                 page_token: str) -> Page[cpb.Party]:
    return Page(*side.data.get(tenant).ledger.parties(page_size, page_token))
