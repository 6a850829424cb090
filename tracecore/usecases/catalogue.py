"""What the read-side filters need of a tenant's ledger: its registered products and batches
(``tracecore.ledger.store.Ledger`` in service, a fake in the tests of the rules)."""

from __future__ import annotations

from typing import Protocol

from pharmatrace.v1 import common_pb2 as cpb


class Catalogue(Protocol):
    def product(self, identifier: str) -> tuple[int, cpb.Product]:
        """(ref, product) of a registered product; NOT_FOUND otherwise."""
        ...

    def batch(self, product: str, lot: str) -> tuple[int, cpb.Batch]:
        """(ref, batch) of a registered batch; NOT_FOUND otherwise."""
        ...
