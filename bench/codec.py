"""Code formats in-process: minting, and parsing plus tag checking from each input form, per scheme.

Beside them, in the same run, the baseline: a plain ``hmac.digest(key, msg, "sha256")`` loop over
as many messages as the minter signs, of the same length. The tag row is ``Mac.digests`` over
those messages, timed in turns with the baseline; their ratio is the saving of the precomputed
key pads (target <= 0.5). Every figure is the best of three runs on one core, with the garbage
collector running as it does in a service.

    python -m bench.codec [--n N] [--json]
"""

from __future__ import annotations

import argparse
import hmac
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypedDict

from tracecore.codes import Code, Form, Scan, Scheme, parse_many, render
from tracecore.mac import Mac
from tracecore.minting import Minter, check_tags

DEFAULT_N = 200_000
TAG_RATIO_TARGET = 0.5
KEY_ID = 7
GTIN = "09501101530003"
DRUG_ID = "8123456"
LOT = "LOT-2025-0042"
EXPIRY = "271231"
_REPEAT = 3
# The tag closes the ledger key (see tracecore.minting): the minter signs the key without it.
_TAG_LENGTH = {Scheme.GS1: 6, Scheme.NMPA: 4}
_FORMS = {
    Scheme.GS1: (Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK),
    Scheme.NMPA: (Form.NMPA20,),
}
_PRODUCTS = {Scheme.GS1: GTIN, Scheme.NMPA: DRUG_ID}


class SchemeFigures(TypedDict):
    """One scheme's rates (codes per second) and per-message HMAC costs (microseconds)."""

    mint_per_s: float
    parse_check_per_s: dict[str, float]
    hmac_digest_us: float
    tag_us: float
    tag_ratio: float


class Figures(TypedDict):
    """What ``run`` measured."""

    n: int
    python: str
    schemes: dict[str, SchemeFigures]


def run(n: int = DEFAULT_N) -> Figures:
    """Measure every figure over ``n`` codes per scheme."""
    secret = os.urandom(32)
    mac = Mac(secret)
    macs = {KEY_ID: mac}
    schemes: dict[str, SchemeFigures] = {}
    for scheme, product in _PRODUCTS.items():
        minter = Minter(scheme, product, KEY_ID, mac)
        (mint_s,) = _best(partial(minter.mint, n))
        codes = [Code(scheme, product, serial) for serial in minter.mint(n)]
        scans = [Scan(code, LOT, EXPIRY) if scheme is Scheme.GS1 else Scan(code) for code in codes]
        parse_check: dict[str, float] = {}
        for form in _FORMS[scheme]:
            (verify_s,) = _best(partial(_verify, [render(scan, form) for scan in scans], macs))
            parse_check[str(form)] = n / verify_s
        messages = [code.key()[:-_TAG_LENGTH[scheme]] for code in codes]
        hmac_s, tag_s = _best(partial(_hmac_digests, secret, messages),
                              partial(mac.digests, messages))
        schemes[scheme.name.lower()] = SchemeFigures(
            mint_per_s=n / mint_s,
            parse_check_per_s=parse_check,
            hmac_digest_us=hmac_s / n * 1e6,
            tag_us=tag_s / n * 1e6,
            tag_ratio=tag_s / hmac_s,
        )
    return Figures(n=n, python=platform.python_version(), schemes=schemes)


def table(figures: Figures) -> str:
    """The figures as an aligned table; the last column is µs per code over the baseline's."""
    rows = [("scheme", "measure", "codes/s", "µs/code", "× hmac.digest")]
    for scheme, f in figures["schemes"].items():
        baseline_us = f["hmac_digest_us"]
        measured = [("mint", f["mint_per_s"])]
        measured += [(f"parse+check {form}", per_s)
                     for form, per_s in f["parse_check_per_s"].items()]
        measured += [("tag: Mac.digests", 1e6 / f["tag_us"]),
                     ("baseline: hmac.digest", 1e6 / baseline_us)]
        for measure, per_s in measured:
            us = 1e6 / per_s
            rows.append((scheme, measure, f"{per_s:,.0f}", f"{us:.2f}", f"{us / baseline_us:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"codec: n={figures['n']:,} per scheme, Python {figures['python']}, one core, "
             f"best of {_REPEAT}"]
    for row in rows:
        numbers = (cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True))
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *numbers]))
    lines.append(f"tag ratio, Mac.digests / hmac.digest (target <= {TAG_RATIO_TARGET}): "
                 + ", ".join(f"{scheme} {f['tag_ratio']:.2f}"
                             for scheme, f in figures["schemes"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.codec",
        description="Mint, parse and tag-check rates per scheme and form, beside hmac.digest.")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="codes per scheme")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.n)
    print(json.dumps(figures, indent=2) if args.json else table(figures))


def _verify(texts: list[str], macs: dict[int, Mac]) -> None:
    """Parse then tag-check ``texts`` as a verify worker does; fail loudly on a wrong answer."""
    scans = parse_many(texts)
    key_ids = check_tags([scan.code for scan in scans if isinstance(scan, Scan)], macs)
    if key_ids.count(KEY_ID) != len(texts):
        raise AssertionError("a minted code did not parse or did not pass its tag check")


def _hmac_digests(secret: bytes, messages: list[bytes]) -> list[bytes]:
    return [hmac.digest(secret, message, "sha256") for message in messages]


def _best(*fns: Callable[[], object]) -> list[float]:
    """Seconds of the fastest of ``_REPEAT`` calls of each function.

    The functions take turns, so that a load change on the machine touches them alike and
    their ratio holds.
    """
    best = [math.inf] * len(fns)
    for _ in range(_REPEAT):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best

if __name__ == "__main__":
    main()
