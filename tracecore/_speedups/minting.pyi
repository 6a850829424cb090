"""Types of the compiled ``minting`` module (see minting.pyx)."""

from tracecore._speedups._hmac import HmacKey

def mint_keys(mac: HmacKey, head: bytes, chars: bytes, width: int, tag_table: bytes,
              tag_length: int) -> list[bytes]: ...
def serials(keys: list[bytes], start: int) -> list[str]: ...
