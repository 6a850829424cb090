"""The consumer check page: ``/check`` with a form, ``/check?code=…`` with the answer, in
Chinese or English, mobile first, without JavaScript or assets from elsewhere."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import replace

from starlette.types import Receive, Scope, Send

from frontdoor import check_html
from frontdoor.asgi import header, headers_of, query, respond
from frontdoor.check_html import escape
from frontdoor.http import Frontdoor, accepted_languages
from frontdoor.texts import TEXTS
from tracecore import regions
from tracecore.clock import now_ms
from tracecore.errors import RateLimited
from tracecore.gs1 import percent_encoded
from tracecore.usecases.public_check import Outcome, PublicCheck, PublicProduct, Warning, check
from tracecore.verification import Answers, ScanContext

_STATUS = {Outcome.UNREADABLE: 400}
_HEADERS = headers_of({
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
})


def language(params: dict[str, str], accept_language: str) -> str:
    """``zh`` or ``en``: the page's switch, else the first of them the browser accepts."""
    asked = params.get("lang", "")
    if asked in TEXTS:
        return asked
    return _preferred(accept_language)


@functools.lru_cache(maxsize=1024)
def _preferred(header: str) -> str:
    """The page language an Accept-Language header asks for: browsers send a few distinct
    headers, so each is worked out once."""
    for tag in accepted_languages(header):
        primary = tag.split("-", 1)[0]
        if primary in TEXTS:
            return primary
    return "en"


class CheckPage:
    """``GET /check``: the form, or the answer for ``code``."""

    def __init__(self, door: Frontdoor) -> None:
        self._door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._door
        params = query(scope)
        lang = language(params, header(scope, b"accept-language"))
        code = params.get("code", "")
        if not code.strip():
            await _send(send, 200, lang, code, None)
            return
        client_address = scope.get("client")
        client = client_address[0] if client_address else ""
        try:
            door.limiter.take(client)
        except RateLimited as exc:
            door.metrics.rate_limited.inc()
            seconds = max(1, -(-exc.retry_after_ms // 1000))
            await _send(send, 429, lang, code, None, limited=True,
                        extra=((b"retry-after", str(seconds).encode()),))
            return

        def verify(tenant: str, text: str, context: ScanContext, at_ms: int) -> Answers:
            return door.reads.verify(tenant, text, context, at_ms, client=client)

        result = check(door.reads, verify, code, now_ms=now_ms())
        await _send(send, _STATUS.get(result.outcome, 200), lang, code, result)



async def _send(send: Send, status: int, lang: str, code: str, result: PublicCheck | None, *,
                limited: bool = False, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = page_bytes(lang, code, result, limited=limited)
    await respond(send, status, body, [*_HEADERS, *extra] if extra else _HEADERS)


def render(lang: str, code: str, result: PublicCheck | None, *, limited: bool = False) -> str:
    """The page in ``lang`` for the text typed in and its answer (None: the form alone)."""
    return page_bytes(lang, code, result, limited=limited).decode()


def page_bytes(lang: str, code: str, result: PublicCheck | None, *, limited: bool = False
               ) -> bytes:
    """``render``'s page as sent, in UTF-8: a kept template's text is kept encoded, so a view
    encodes only the code (a page's marks and words make its text wide, and encoding the
    whole of it costs more than making it)."""
    if result is not None and result.repaired:
        # Its words name the code read: made whole, as rare as scrambled scans are.
        return _page(lang, quote_plus(code), code, result, limited).encode()
    template = _template(lang, bool(code), limited, _said(result), tuple(_warnings(result, lang)))
    if template is None:
        return _page(lang, quote_plus(code), code, result, limited).encode()
    head, holes = template
    values = {_QUOTED: quote_plus(code).encode() if code else b"",
              _TYPED: escape(code).encode(),
              _CHECKED: escape(result.code).encode() if result is not None else b""}
    return head + b"".join([values[hole] + text for hole, text in holes])


#: Where a template leaves a place for the code, and which: the text typed in, URL-encoded
#: (the language switch) or as HTML (the form), and the code it was read as (its row).
_HOLE = "\x00"
_QUOTED, _TYPED, _CHECKED = "Q", "T", "C"
#: What of an answer the page shows besides the code: (outcome, reason, product, lot, expiry,
#: first check, has a code).
_Said = tuple[str, str, PublicProduct | None, str, str, bool, bool] | None
#: A page's text up to its first hole, then each hole and the text after it, in UTF-8.
_Template = tuple[bytes, tuple[tuple[str, bytes], ...]]


def _said(result: PublicCheck | None) -> _Said:
    if result is None:
        return None
    return (result.outcome.value, result.reason, result.product, result.lot, result.expires_on,
            result.scan_count == 1, bool(result.code))


@functools.lru_cache(maxsize=1024)
def _template(lang: str, has_code: bool, limited: bool, said: _Said,
              warnings: tuple[tuple[str, str], ...]) -> _Template | None:
    """A page as text with places for the code: the page of a product's packs in one language
    is the same but for the code, so a view only escapes the code and joins. None (the page is
    made whole each time) if what it shows holds the hole's marker."""
    result = None
    if said is not None:
        outcome, reason, product, lot, expires_on, first_check, code = said
        result = PublicCheck(Outcome(outcome), _HOLE + _CHECKED if code else "", reason, product,
                             lot, expires_on, scan_count=1 if first_check else 0)
    typed = _HOLE + _TYPED if has_code else ""
    text = _page(lang, _HOLE + _QUOTED, typed, result, limited, warnings)
    if _HOLE in _page(lang, "", "", result and replace(result, code=""), limited, warnings):
        return None
    head, *rest = text.split(_HOLE)
    return head.encode(), tuple((part[0], part[1:].encode()) for part in rest)


def _page(lang: str, quoted: str, code: str, result: PublicCheck | None, limited: bool,
          warnings: tuple[tuple[str, str], ...] | None = None) -> str:
    """The page, ``quoted`` being ``code`` URL-encoded; the answer's ``warnings`` in words if
    worked out already."""
    switch = {other: f"/check?code={quoted}&lang={other}" if code else f"/check?lang={other}"
              for other in TEXTS if other != lang}
    if result is None:
        return check_html.page(lang, code, switch, limited=limited)
    return check_html.page(
        lang, code, switch, outcome=result.outcome.value, checked=result.code,
        reason=result.reason, repaired=result.repaired, rows=_rows(result, lang),
        warnings=list(warnings) if warnings is not None else _warnings(result, lang),
        first_check=result.scan_count == 1, product=result.product is not None)


def quote_plus(text: str) -> str:
    """``urllib.parse.quote_plus(text)``: a space is the only byte percent-encoding writes
    as %20."""
    return percent_encoded(text).replace("%20", "+")


def _rows(result: PublicCheck, lang: str) -> str:
    """The product section's rows, in order: the product's and batch's, then the code's."""
    p = result.product
    if p is None:
        return ""
    return check_html.rows(lang, (
        ("name", p.name), ("generic_name", p.generic_name), ("strength", p.strength),
        ("pack_spec", p.pack_spec), ("dosage_form", p.dosage_form), ("mah", p.mah),
        ("manufacturer", p.manufacturer), ("approval_number", p.approval_number),
        ("lot", result.lot), ("expires_on", result.expires_on))) + (
        check_html.row(lang, "code", result.code) if result.code else "")


def _warnings(result: PublicCheck | None, lang: str) -> list[tuple[str, str]]:
    """(warning, its words) of each warning of the result."""
    if result is None:
        return []
    texts = TEXTS[lang]
    out = []
    for warning in result.warnings:
        if warning is Warning.CHECKED_BEFORE:
            first = dt.datetime.fromtimestamp(result.first_checked_ms / 1000, dt.UTC)
            province = _province(result.first_province, lang)
            out.append((warning.value, texts["checked_where" if province else "checked"].format(
                count=result.scan_count, date=first.strftime("%Y-%m-%d"), province=province)))
        else:
            out.append((warning.value, texts[f"w_{warning.value}"]))
    return out


def _province(prefix: str, lang: str) -> str:
    """The province's name in the page's language ("" when the first check did not say)."""
    found = regions.division(prefix) if prefix else None
    if found is None:
        return prefix
    return found.name_zh if lang == "zh" else found.name_en
