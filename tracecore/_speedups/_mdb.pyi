"""Types of the compiled ``_mdb`` (``_mdb.pyx``): LMDB's reads through its C API on py-lmdb's
transactions, for the compiled loops."""

KNOWN: frozenset[str]

def use(on: bool) -> bool: ...
def in_use(txn: object, db: object) -> bool: ...
