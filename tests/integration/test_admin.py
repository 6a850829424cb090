"""Admin over real gRPC: tenants, products, batches and parties, validated and paged."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb

from tracecore.gs1 import check_digit

pytestmark = pytest.mark.timeout(120)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
GTIN = "09501101530003"
#: Valid GTINs of every length, each with its GTIN-14.
GTINS = {"gtin-8": ("96385074", "00000096385074"),
         "gtin-12": ("036000291452", "00036000291452"),
         "gtin-13": ("5012345678900", "05012345678900"),
         "gtin-14": ("09501101530003", "09501101530003")}
GLN = "5012345678900"


def _product(**fields) -> cpb.Product:
    return cpb.Product(**{"gtin": GTIN, "name": "Amoxicillin 500 mg capsules", **fields})


def _batch(**fields) -> cpb.Batch:
    return cpb.Batch(**{"product": GTIN, "lot": "LOT-1", "manufactured_on": "2026-01-15",
                        "expires_on": "2028-01-31", **fields})


def _party(**fields) -> cpb.Party:
    return cpb.Party(**{"party_id": "pharmacy-17", "name": "Renmin Pharmacy", "region": "440305",
                        "kind": cpb.PARTY_KIND_PHARMACY, **fields})


# -- tenants -----------------------------------------------------------------------------------


def test_a_new_tenant_has_an_active_signing_key_and_is_listed(api) -> None:
    """CreateTenant answers with the tenant and its first key; ListTenants then lists it."""
    response = api.admin.CreateTenant(apb.CreateTenantRequest(tenant="acme-pharma-7",
                                                              name="Acme Pharma"))
    assert (response.tenant, response.active_key_id) == ("acme-pharma-7", 1)
    assert "acme-pharma-7" in api.admin.ListTenants(apb.ListTenantsRequest()).tenants


def test_a_tenant_cannot_be_created_twice(api, tenant: str, refused) -> None:
    """Creating a tenant whose id is taken is ALREADY_EXISTS naming tenant."""
    refused(EXISTS, "tenant",
            lambda: api.admin.CreateTenant(apb.CreateTenantRequest(tenant=tenant, name="Again")))


@pytest.mark.parametrize("tenant_id", ["", "Acme", "-acme", "acme_pharma", "acme.pharma",
                                       "../acme", "a" * 33, "药企"])
def test_a_malformed_tenant_id_is_refused(api, refused, tenant_id: str) -> None:
    """A tenant id is 1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit."""
    refused(INVALID, "tenant",
            lambda: api.admin.CreateTenant(apb.CreateTenantRequest(tenant=tenant_id, name="X")))
    assert tenant_id not in api.admin.ListTenants(apb.ListTenantsRequest()).tenants


def test_a_malformed_tenant_id_is_named_before_its_display_name(api, refused) -> None:
    """`tenant create` gives the id as the display name when none is given: an id far too long
    is refused naming tenant, the field that is wrong, not name."""
    refused(INVALID, "tenant", lambda: api.admin.CreateTenant(
        apb.CreateTenantRequest(tenant="x" * 300, name="x" * 300)))


def test_a_tenant_display_name_over_200_characters_is_refused(api, refused) -> None:
    """A display name longer than 200 characters is INVALID_ARGUMENT naming name."""
    refused(INVALID, "name", lambda: api.admin.CreateTenant(
        apb.CreateTenantRequest(tenant="long-name-pharma", name="N" * 201)))


# -- products ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "gtin14"), GTINS.values(), ids=GTINS.keys())
def test_a_gtin_of_any_length_is_registered_as_its_gtin_14(api, tenant: str, given: str,
                                                            gtin14: str) -> None:
    """GTIN-8, -12 and -13 are padded to 14 digits; the product answers to either form."""
    product = api.admin.RegisterProduct(apb.RegisterProductRequest(
        tenant=tenant, product=_product(gtin=given))).product
    assert (product.gtin, product.scheme) == (gtin14, cpb.SCHEME_GS1)
    assert product.created_at_ms > 0
    for name in (given, gtin14):
        got = api.admin.GetProduct(apb.GetProductRequest(tenant=tenant, product=name)).product
        assert got == product


def test_an_nmpa_product_is_registered_under_its_drug_identifier(api, tenant: str) -> None:
    """A product with only an NMPA drug identifier gets the NMPA scheme and keeps its details."""
    product = api.admin.RegisterProduct(apb.RegisterProductRequest(
        tenant=tenant, product=cpb.Product(
            nmpa_id="8612345", name="阿莫西林胶囊", form="胶囊", strength="0.25 g", pack_size=20,
            approval_number="国药准字H44021351"))).product
    assert (product.nmpa_id, product.scheme, product.name, product.pack_size) == (
        "8612345", cpb.SCHEME_NMPA, "阿莫西林胶囊", 20)
    got = api.admin.GetProduct(apb.GetProductRequest(tenant=tenant, product="8612345")).product
    assert got == product


def test_a_product_cannot_be_registered_twice(api, tenant: str, refused) -> None:
    """Registering a GTIN again, in any of its lengths, is ALREADY_EXISTS."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    refused(EXISTS, "product", lambda: api.admin.RegisterProduct(apb.RegisterProductRequest(
        tenant=tenant, product=_product(gtin=GTIN.removeprefix("0"), name="Other name"))))


@pytest.mark.parametrize(("product", "field"), [
    pytest.param(_product(gtin="09501101530004"), "product.gtin", id="bad-check-digit"),
    pytest.param(_product(gtin="950110153000"), "product.gtin", id="bad-gtin-12-check-digit"),
    pytest.param(_product(gtin="0950110153"), "product.gtin", id="ten-digits"),
    pytest.param(_product(gtin="0950110153000X"), "product.gtin", id="not-digits"),
    pytest.param(_product(gtin="", scheme=cpb.SCHEME_GS1, nmpa_id="8612345"), "product.gtin",
                 id="gs1-without-gtin"),
    pytest.param(cpb.Product(nmpa_id="861234", name="X"), "product.nmpa_id", id="nmpa-6-digits"),
    pytest.param(cpb.Product(gtin=GTIN, scheme=cpb.SCHEME_NMPA, name="X"), "product.nmpa_id",
                 id="nmpa-without-identifier"),
    pytest.param(_product(scheme=7), "product.scheme", id="unknown-scheme"),
    pytest.param(_product(name=""), "product.name", id="no-name"),
    pytest.param(_product(name="N" * 201), "product.name", id="name-over-200"),
    pytest.param(_product(strength="S" * 101), "product.strength", id="strength-over-100"),
])
def test_a_bad_product_is_refused_naming_the_field(api, tenant: str, refused,
                                                   product: cpb.Product, field: str) -> None:
    """RegisterProduct refuses a bad product with INVALID_ARGUMENT naming the field."""
    refused(INVALID, field, lambda: api.admin.RegisterProduct(
        apb.RegisterProductRequest(tenant=tenant, product=product)))
    assert not api.admin.ListProducts(apb.ListProductsRequest(tenant=tenant)).products


def test_an_unknown_product_is_not_found(api, tenant: str, refused) -> None:
    """GetProduct of a GTIN never registered is NOT_FOUND naming product."""
    refused(NOT_FOUND, "product",
            lambda: api.admin.GetProduct(apb.GetProductRequest(tenant=tenant, product=GTIN)))


def _link(link_type: str, lang: str, href: str) -> cpb.ProductLink:
    return cpb.ProductLink(link_type=link_type, lang=lang, href=href)


def test_a_product_link_is_removed_by_type_and_language(api, tenant: str, refused) -> None:
    """RemoveProductLink takes off the one link of that type and language and answers with it
    and the links left; with two of the same type and language it needs the href
    (INVALID_ARGUMENT naming href), and a link the product does not have is NOT_FOUND."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    for link in (_link("gs1:epil", "en", "https://example.com/en.pdf"),
                 _link("gs1:epil", "zh-CN", "https://example.com/zh-1.pdf"),
                 _link("gs1:epil", "zh-CN", "https://example.com/zh-2.pdf"),
                 _link("gs1:pip", "", "https://example.com/pip")):
        api.admin.AddProductLink(apb.AddProductLinkRequest(tenant=tenant, product=GTIN,
                                                           link=link))
    done = api.admin.RemoveProductLink(apb.RemoveProductLinkRequest(
        tenant=tenant, product=GTIN, link_type="gs1:epil", lang="en"))
    assert done.removed.href == "https://example.com/en.pdf"
    assert [link.href for link in done.product.links] == [
        "https://example.com/zh-1.pdf", "https://example.com/zh-2.pdf", "https://example.com/pip"]
    refused(INVALID, "href", lambda: api.admin.RemoveProductLink(apb.RemoveProductLinkRequest(
        tenant=tenant, product=GTIN, link_type="gs1:epil", lang="zh-CN")))
    api.admin.RemoveProductLink(apb.RemoveProductLinkRequest(
        tenant=tenant, product=GTIN, link_type="gs1:epil", lang="zh-CN",
        href="https://example.com/zh-2.pdf"))
    refused(NOT_FOUND, None, lambda: api.admin.RemoveProductLink(apb.RemoveProductLinkRequest(
        tenant=tenant, product=GTIN, link_type="gs1:pip", lang="en")))
    refused(INVALID, "link.link_type", lambda: api.admin.RemoveProductLink(
        apb.RemoveProductLinkRequest(tenant=tenant, product=GTIN, link_type="pip")))
    left = api.admin.GetProduct(apb.GetProductRequest(tenant=tenant, product=GTIN)).product
    assert [link.href for link in left.links] == [
        "https://example.com/zh-1.pdf", "https://example.com/pip"]


def test_master_data_of_an_unknown_tenant_is_not_found(api, refused) -> None:
    """Registering or reading master data for a tenant that does not exist is NOT_FOUND."""
    refused(NOT_FOUND, "tenant", lambda: api.admin.RegisterProduct(
        apb.RegisterProductRequest(tenant="no-such-tenant", product=_product())))
    refused(NOT_FOUND, "tenant", lambda: api.admin.ListBatches(
        apb.ListBatchesRequest(tenant="no-such-tenant")))


# -- batches -----------------------------------------------------------------------------------


def test_a_batch_is_stored_canonical_and_read_back(api, tenant: str) -> None:
    """AddBatch answers with the stored batch (region prefixes shortened); GetBatch returns it."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    material = cpb.MaterialLot(material="amoxicillin trihydrate", supplier="Zhuhai API Co",
                               supplier_lot="AMX-2026-001", quantity="25 kg")
    added = api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=_batch(
        product=GTIN.removeprefix("0"), materials=[material],
        authorised_regions=["440000", "4403", "110101"]))).batch
    assert (added.product, added.lot, added.expires_on) == (GTIN, "LOT-1", "2028-01-31")
    assert list(added.authorised_regions) == ["44", "4403", "110101"]
    assert list(added.materials) == [material]
    got = api.admin.GetBatch(apb.GetBatchRequest(tenant=tenant, product=GTIN, lot="LOT-1")).batch
    assert got == added


def test_a_batch_cannot_be_added_twice(api, tenant: str, refused) -> None:
    """A second batch with the same lot of the same product is ALREADY_EXISTS naming the lot."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=_batch()))
    refused(EXISTS, "lot", lambda: api.admin.AddBatch(apb.AddBatchRequest(
        tenant=tenant, batch=_batch(expires_on="2029-01-31"))))


@pytest.mark.parametrize(("batch", "field"), [
    pytest.param(_batch(lot=""), "batch.lot", id="no-lot"),
    pytest.param(_batch(lot="LOT 1"), "batch.lot", id="lot-with-space"),
    pytest.param(_batch(lot="LOT#1"), "batch.lot", id="lot-outside-set-82"),
    pytest.param(_batch(lot="L" * 21), "batch.lot", id="lot-over-20"),
    pytest.param(_batch(expires_on=""), "batch.expires_on", id="no-expiry"),
    pytest.param(_batch(expires_on="2028-02-30"), "batch.expires_on", id="no-such-day"),
    pytest.param(_batch(expires_on="31/01/2028"), "batch.expires_on", id="not-iso"),
    pytest.param(_batch(manufactured_on="2026-13-01"), "batch.manufactured_on",
                 id="no-such-month"),
    pytest.param(_batch(manufactured_on="2028-02-01"), "batch.expires_on",
                 id="expires-before-manufacture"),
    pytest.param(_batch(authorised_regions=["99"]), "batch.authorised_regions[0]",
                 id="unknown-province"),
    pytest.param(_batch(authorised_regions=["44", "440"]), "batch.authorised_regions[1]",
                 id="three-digit-prefix"),
    pytest.param(_batch(materials=[cpb.MaterialLot(material="starch", supplier_lot="S1")]),
                 "batch.materials[0].supplier", id="material-without-supplier"),
    pytest.param(_batch(product="12345"), "batch.product", id="malformed-product"),
])
def test_a_bad_batch_is_refused_naming_the_field(api, tenant: str, refused, batch: cpb.Batch,
                                                 field: str) -> None:
    """AddBatch refuses a bad batch with INVALID_ARGUMENT naming the field."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    refused(INVALID, field, lambda: api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant,
                                                                           batch=batch)))
    assert not api.admin.ListBatches(apb.ListBatchesRequest(tenant=tenant)).batches


@pytest.mark.parametrize("written", ["20280131", "2028-W05-1"])
def test_batch_dates_are_kept_as_yyyy_mm_dd(api, tenant: str, written: str) -> None:
    """A date in another ISO 8601 form is refused or stored as YYYY-MM-DD, never as given."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    try:
        batch = api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant,
                                                       batch=_batch(expires_on=written))).batch
    except grpc.RpcError as error:
        assert error.code() == INVALID  # type: ignore[attr-defined]
        assert "batch.expires_on" in error.details()  # type: ignore[attr-defined]
        return
    assert dt.date.fromisoformat(batch.expires_on).isoformat() == batch.expires_on


def test_a_batch_of_an_unknown_product_is_not_found(api, tenant: str, refused) -> None:
    """AddBatch for a product never registered is NOT_FOUND naming batch.product."""
    refused(NOT_FOUND, "batch.product",
            lambda: api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=_batch())))


def test_an_unknown_batch_is_not_found(api, tenant: str, refused) -> None:
    """GetBatch of a lot never added is NOT_FOUND naming lot."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=_product()))
    refused(NOT_FOUND, "lot", lambda: api.admin.GetBatch(
        apb.GetBatchRequest(tenant=tenant, product=GTIN, lot="NOPE")))


# -- parties -----------------------------------------------------------------------------------


def test_a_party_is_stored_and_read_back(api, tenant: str) -> None:
    """AddParty answers with the stored party; GetParty returns it."""
    added = api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=_party(
        gln=GLN, authorised_regions=["440000"]))).party
    assert (added.party_id, added.gln, added.region, list(added.authorised_regions)) == (
        "pharmacy-17", GLN, "440305", ["44"])
    got = api.admin.GetParty(apb.GetPartyRequest(tenant=tenant, party_id="pharmacy-17")).party
    assert got == added


def test_a_party_cannot_be_added_twice(api, tenant: str, refused) -> None:
    """A second party with the same id is ALREADY_EXISTS naming party.party_id."""
    api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=_party()))
    refused(EXISTS, "party.party_id", lambda: api.admin.AddParty(
        apb.AddPartyRequest(tenant=tenant, party=_party(name="Another"))))


@pytest.mark.parametrize(("party", "field"), [
    pytest.param(_party(gln="5012345678901"), "party.gln", id="gln-bad-check-digit"),
    pytest.param(_party(gln="501234567890"), "party.gln", id="gln-12-digits"),
    pytest.param(_party(region="999999"), "party.region", id="unknown-region"),
    pytest.param(_party(region="4403"), "party.region", id="region-not-six-digits"),
    pytest.param(_party(party_id=""), "party.party_id", id="no-id"),
    pytest.param(_party(party_id="pharmacy 17"), "party.party_id", id="id-with-space"),
    pytest.param(_party(party_id="p" * 65), "party.party_id", id="id-over-64"),
    pytest.param(_party(name=""), "party.name", id="no-name"),
    pytest.param(_party(kind=99), "party.kind", id="unknown-kind"),
    pytest.param(_party(authorised_regions=["7"]), "party.authorised_regions[0]",
                 id="bad-authorised-region"),
])
def test_a_bad_party_is_refused_naming_the_field(api, tenant: str, refused, party: cpb.Party,
                                                 field: str) -> None:
    """AddParty refuses a bad party with INVALID_ARGUMENT naming the field."""
    refused(INVALID, field,
            lambda: api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=party)))
    assert not api.admin.ListParties(apb.ListPartiesRequest(tenant=tenant)).parties


def test_an_unknown_party_is_not_found(api, tenant: str, refused) -> None:
    """GetParty of an id never added is NOT_FOUND naming party_id."""
    refused(NOT_FOUND, "party_id", lambda: api.admin.GetParty(
        apb.GetPartyRequest(tenant=tenant, party_id="nobody")))


# -- paging ------------------------------------------------------------------------------------


def _pages(call, request_type, page_size: int, items: str, **fields) -> list[list[object]]:
    """Every page of a List call, following next_page_token to the end."""
    pages: list[list[object]] = []
    token = ""
    while True:
        response = call(request_type(page_size=page_size, page_token=token, **fields))
        pages.append(list(getattr(response, items)))
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "paging does not end"


def _gtin(n: int) -> str:
    body = f"0950110153{n:03d}"
    return body + str(check_digit(body))


def test_products_page_in_registration_order(api, tenant: str) -> None:
    """Five products in pages of two: three pages, every product once, in registration order."""
    gtins = [_gtin(n) for n in range(5)]
    for gtin in gtins:
        api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant,
                                                             product=_product(gtin=gtin)))
    pages = _pages(api.admin.ListProducts, apb.ListProductsRequest, 2, "products", tenant=tenant)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [p.gtin for page in pages for p in page] == gtins


def test_batches_page_and_filter_by_product(api, tenant: str) -> None:
    """Batches of one product page across the batches of another, none lost or repeated."""
    other = _gtin(900)
    for gtin in (GTIN, other):
        api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant,
                                                             product=_product(gtin=gtin)))
    lots = []
    for n in range(6):
        for gtin in (GTIN, other):
            api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant,
                                                   batch=_batch(product=gtin, lot=f"L{n}")))
        lots.append(f"L{n}")
    pages = _pages(api.admin.ListBatches, apb.ListBatchesRequest, 4, "batches", tenant=tenant,
                   product=GTIN)
    assert [len(page) for page in pages] == [4, 2]
    assert [(b.product, b.lot) for page in pages for b in page] == [(GTIN, lot) for lot in lots]
    everything = _pages(api.admin.ListBatches, apb.ListBatchesRequest, 5, "batches",
                        tenant=tenant)
    assert [len(page) for page in everything] == [5, 5, 2]


def test_parties_page_exactly_full_pages_without_an_empty_last_one(api, tenant: str) -> None:
    """Four parties in pages of two: two pages and no empty third page."""
    ids = [f"site-{n}" for n in range(4)]
    for party_id in ids:
        api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=_party(party_id=party_id)))
    pages = _pages(api.admin.ListParties, apb.ListPartiesRequest, 2, "parties", tenant=tenant)
    assert [[p.party_id for p in page] for page in pages] == [ids[:2], ids[2:]]


def test_a_page_holds_100_without_a_page_size(api, tenant: str) -> None:
    """Without page_size a page holds 100 entries."""
    for n in range(101):
        api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=_party(party_id=f"p{n}")))
    pages = _pages(api.admin.ListParties, apb.ListPartiesRequest, 0, "parties", tenant=tenant)
    assert [len(page) for page in pages] == [100, 1]


@pytest.mark.parametrize(("page_size", "page_token", "field"), [
    pytest.param(1001, "", "page_size", id="page-size-over-1000"),
    pytest.param(10, "not-a-token", "page_token", id="made-up-token"),
])
def test_a_bad_page_request_is_refused(api, tenant: str, refused, page_size: int,
                                       page_token: str, field: str) -> None:
    """A page size over 1,000 or a token the service never gave is INVALID_ARGUMENT."""
    for call, request_type in ((api.admin.ListProducts, apb.ListProductsRequest),
                               (api.admin.ListBatches, apb.ListBatchesRequest),
                               (api.admin.ListParties, apb.ListPartiesRequest)):
        refused(INVALID, field, lambda call=call, request_type=request_type: call(
            request_type(tenant=tenant, page_size=page_size, page_token=page_token)))


@pytest.mark.parametrize("page_token", ["99999999999", "²"])
def test_a_made_up_numeric_page_token_is_refused(api, tenant: str, refused,
                                                 page_token: str) -> None:
    """A digit-only token the service never gave is INVALID_ARGUMENT, not an internal error."""
    refused(INVALID, "page_token", lambda: api.admin.ListProducts(
        apb.ListProductsRequest(tenant=tenant, page_token=page_token)))
