"""Compressed GS1 Digital Links over real HTTP: the resolver and the check page answer them
as they answer the uncompressed links they stand for."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from tests.integration.frontdoor.conftest import Door, Pack, Shop
from tracecore.gs1_compression import expand

_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def compressed(pack: Pack, host: str) -> str:
    """The pack's Digital Link compressed as GS1's toolkit writes it: optimisation 1A for
    (01)(10)(17)(21), the GTIN in 47 bits, the expiry in 20, lot and serial as text."""
    bits = "00011010" + format(int(pack.gtin), "047b") + _text(pack.lot)
    bits += format(int(pack.expiry), "020b") + _text(pack.serial())
    bits += "0" * (-len(bits) % 6)
    segment = "".join(_BASE64URL[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6))
    return f"{host}/{segment}"


def _text(text: str) -> str:
    """Base64url-encoded text: 3 bits of encoding (3), 5 of length, 6 per character."""
    return "011" + format(len(text), "05b") + "".join(
        format(_BASE64URL.index(c), "06b") for c in text)


def test_the_helper_compresses_as_gs1s_toolkit_does() -> None:
    """The test's compressor gives the very string GS1's reference toolkit gives."""
    pack = Pack("t", "04012345000016", "L0T-7", dt.date(2027, 12, 31),
                ["(01)04012345000016(21)HX5K3MQ9R2T7"])
    assert compressed(pack, "https://example.com") == (
        "https://example.com/GgdMZMwAoMpeif3aEb-2Dr8lbmIeo7J9g")
    assert expand(compressed(pack, "https://example.com")) == pack.digital_link(
        host="https://example.com")


def test_a_compressed_link_redirects_like_the_uncompressed_one(door: Door, shop: Shop) -> None:
    """A compressed QR code redirects (307) to the same check page as the full link."""
    pack = shop.pack()
    with door.client() as http:
        short = http.get(compressed(pack, ""))
        full = http.get(pack.digital_link())
    assert short.status_code == full.status_code == 307
    assert short.headers["location"] == full.headers["location"]


def test_a_compressed_links_linkset_is_the_same_as_the_uncompressed(door: Door, shop: Shop
                                                                     ) -> None:
    """The linkset of a compressed link names it as anchor, owl:sameAs the full link, with the
    same links."""
    pack = shop.pack()
    shop.link(pack, "gs1:epil", "https://leaflets.example.com/en.pdf", "en", "Leaflet")
    with door.client() as http:
        short = http.get(compressed(pack, "") + "?linkType=linkset")
        full = http.get(pack.digital_link() + "&linkType=linkset")
    assert short.status_code == 200
    (context,) = short.json()["linkset"]
    (plain,) = full.json()["linkset"]
    assert context["anchor"] == door.url + compressed(pack, "")
    assert context.pop("http://www.w3.org/2002/07/owl#sameAs") == [{"href": plain["anchor"]}]
    assert {k: v for k, v in context.items() if k != "anchor"} == {
        k: v for k, v in plain.items() if k != "anchor"}


def test_the_check_page_takes_a_compressed_link(door: Door, shop: Shop) -> None:
    """Pasting a compressed Digital Link into the check page shows the pack as genuine."""
    pack = shop.pack()
    with door.client() as http:
        page = http.get(f"/check?code={quote(compressed(pack, 'https://id.example.com'))}")
    assert page.status_code == 200
    assert 'data-outcome="genuine"' in page.text
    assert pack.serial() in page.text


def test_a_compressed_link_that_does_not_decode_is_400_and_other_words_404(door: Door) -> None:
    """Bits that do not decode answer 400 with the reason; a word that cannot be a compressed
    link is simply not found."""
    with door.client() as http:
        bad = http.get("/ARHKVAdpQgX_____")
        word = http.get("/favicon.ico")
    assert bad.status_code == 400
    assert "compressed Digital Link" in bad.json()["detail"]
    assert word.status_code == 404
