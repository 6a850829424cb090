"""Compressed GS1 Digital Link URIs read as the uncompressed ones they stand for, on the
examples of GS1's reference toolkit and of the GS1 Digital Link documentation."""

from __future__ import annotations

import pytest

from tracecore import codes, gs1
from tracecore.errors import ParseError
from tracecore.gs1_compression import expand

#: (compressed, uncompressed): the first four are the published examples (GS1's compression
#: prototype, its Python port's README and digital-link.js's README); the rest were compressed
#: by GS1's reference toolkit (GS1DigitalLinkToolkit.js), with and without optimisations.
EXAMPLES = [
    ("https://id.gs1.org/ARHKVAdpQg", "https://id.gs1.org/01/09780345418913"),
    ("https://id.gs1.org/AREjalurbiAUO-cgohCz45Z67b8A",
     "https://id.gs1.org/01/09421902960055/10/2010005828/21/xyz1234"),
    ("https://dlnkd.tn.gg/DBHKVAdpQgqrCg", "https://dlnkd.tn.gg/01/09780345418913/21/43786"),
    ("http://example.org/AQnYUc1gmiERBhQ0ytiyZuAGOLc1TXhXsaXbQKHFuaprwUmrBX6g",
     "http://example.org/01/05412345000013/10/ABC%26%2B123?7003=1903061658"
     "&expdt=1903061658&k1=v1"),
    ("https://example.com/GgnYUc1gmo1XgkZYGUCjA5",
     "https://example.com/01/05412345000013/10/ABC123/21/12345?17=180426"),
    ("https://example.com/AQnYUc1gmiCNV4JGLlgZRCCjA5",
     "https://example.com/01/05412345000013/10/ABC123/21/12345?17=180426"),
    ("https://example.com/GgdMZMwAoMpeif3aEb-2Dr8lbmIeo7J9g",
     "https://example.com/01/04012345000016/10/L0T-7/21/HX5K3MQ9R2T7?17=271231"),
    ("https://example.com/AQdMZMwAoCDKXon92LoRv5C2Dr8lbmIeo7J9g",
     "https://example.com/01/04012345000016/10/L0T-7/21/HX5K3MQ9R2T7?17=271231"),
    ("https://example.com/DgnYUc1gmji3NU0IREGFDTK2LJn4KTVgr9Q",
     "https://example.com/01/05412345000013/10/ABC%26%2B123?7003=1903061658&k1=v1"),
    ("https://example.com/ChFKk4XBoIRUIIdXhCVVeb3gJG",
     "https://example.com/01/09506000134352/22/2A/10/ABC/21/abcdef0123"),
    ("https://example.com/ARFKk4XBoCCHV4QlVXm94CRkSEVA",
     "https://example.com/01/09506000134352/22/2A/10/ABC/21/abcdef0123"),
    ("https://example.com/DBFKk4XBoKlXm94CRorPE1ea",
     "https://example.com/01/09506000134352/21/ABCDEF0123456789ABCD"),
    ("https://example.com/ARFKk4XBoEKpV5veAkaKzxNXmg",
     "https://example.com/01/09506000134352/21/ABCDEF0123456789ABCD"),
]


@pytest.mark.parametrize(("compressed", "uncompressed"), EXAMPLES)
def test_examples_decompress_as_gs1s_toolkit_does(compressed: str, uncompressed: str) -> None:
    """Each example decompresses to exactly the URI GS1's reference toolkit gives."""
    assert expand(compressed) == uncompressed


def test_a_compressed_link_parses_to_the_same_elements() -> None:
    """The Digital Link parser reads a compressed link as its uncompressed form."""
    compressed, plain = EXAMPLES[4]
    assert gs1.parse_digital_link(compressed) == gs1.parse_digital_link(plain)
    assert codes.parse(compressed) == codes.parse(plain)


def test_uncompressed_links_are_left_alone() -> None:
    """An ordinary Digital Link is not taken for a compressed one."""
    assert expand("https://example.com/01/09780345418913") is None
    assert expand("https://example.com/01/09780345418913/21/ABCDEFGHIJKL") is None
    assert expand("https://example.com/short") is None


@pytest.mark.parametrize("bad", [
    "https://example.com/ARHKVAdp",          # cut off inside the GTIN
    "https://example.com/_____________",     # no such AI or optimisation code
    "https://example.com/" + "A" * 2001,     # longer than any label
])
def test_bits_that_do_not_decode_are_a_parse_error(bad: str) -> None:
    """A segment in compressed form whose bits do not decode is refused with a reason."""
    with pytest.raises(ParseError) as refused:
        gs1.parse_digital_link(bad)
    assert refused.value.reason
