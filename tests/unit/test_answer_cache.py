"""The bound of the resolver's kept answers: answers beyond it push out the oldest, and an
answer made from a record that changed is not served."""

from __future__ import annotations

from collections.abc import Sequence

from pharmatrace.v1 import common_pb2 as pb

from frontdoor.answer_cache import Answer, AnswerCache, Recording


class _Catalogue:
    """Products by tenant, each returned as the same object until replaced."""

    def __init__(self) -> None:
        self.records = {("t", "g"): pb.Product(gtin="g")}

    def owners(self, product_id: str) -> Sequence[str]:
        return ("t",) if product_id == "g" else ()

    def product(self, tenant: str, product_id: str) -> pb.Product:
        return self.records[(tenant, product_id)]

    def sscc_owners(self, code: str) -> Sequence[str]:
        return ()


def _made(catalogue: _Catalogue) -> Recording:
    made_from = Recording(catalogue)
    made_from.product("t", "g")
    return made_from


def test_the_oldest_answers_go_when_the_bound_is_reached() -> None:
    """With room for about three answers, a fourth pushes out the first; the total stays
    within the bound."""
    catalogue = _Catalogue()
    cache = AnswerCache(max_bytes=3 * 1600)
    for n in range(4):
        cache.put((f"/01/g/21/{n}",), Answer(307, [], b"x" * 500), _made(catalogue))
    assert cache.get(("/01/g/21/0",)) is None
    assert cache.get(("/01/g/21/3",)) is not None
    assert cache.size_bytes <= 3 * 1600


def test_an_answer_of_a_changed_record_is_not_served() -> None:
    """Once the catalogue returns another record, the answer made from the old one is
    dropped."""
    catalogue = _Catalogue()
    cache = AnswerCache(max_bytes=10_000)
    cache.put(("k",), Answer(307, [], b""), _made(catalogue))
    assert cache.get(("k",)) is not None
    catalogue.records[("t", "g")] = pb.Product(gtin="g", name="renamed")
    assert cache.get(("k",)) is None
    assert len(cache) == 0


def test_answers_of_unknown_products_or_sscc_reads_are_not_kept() -> None:
    """An answer whose owners read found nobody, or that read SSCC owners, is not kept."""
    catalogue = _Catalogue()
    cache = AnswerCache(max_bytes=10_000)
    nobody = Recording(catalogue)
    nobody.owners("made-up")
    cache.put(("a",), Answer(307, [], b""), nobody)
    sscc = _made(catalogue)
    sscc.sscc_owners("0" * 18)
    cache.put(("b",), Answer(307, [], b""), sscc)
    assert len(cache) == 0
