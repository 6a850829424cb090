"""The consumer check page: ``/check`` with a form, ``/check?code=…`` with the answer, in
Chinese or English, mobile first, without JavaScript or assets from elsewhere."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from frontdoor.http import Frontdoor, accepted_languages
from frontdoor.texts import TEXTS
from tracecore import regions
from tracecore.clock import now_ms
from tracecore.errors import RateLimited
from tracecore.usecases.public_check import Outcome, PublicCheck, Warning, check
from tracecore.verification import Answers, ScanContext

MAX_CODE = 4096
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _TEMPLATES.get_template("check.html")
#: The page's words escaped once: autoescaping then passes them through untouched.
_WORDS = {lang: {key: markupsafe.escape(text) for key, text in texts.items()}
          for lang, texts in TEXTS.items()}
_STATUS = {Outcome.UNREADABLE: 400}
# Beside the words and the colour, a symbol: none of the three alone carries the verdict.
_MARKS = {"genuine": "✓", "caution": "!", "do_not_use": "✕", "not_genuine": "✕",
          "product_only": "i", "unreadable": "?", "known_foreign": "i"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def language(request: Request) -> str:
    """``zh`` or ``en``: the page's switch, else the first of them the browser accepts."""
    asked = request.query_params.get("lang", "")
    if asked in TEXTS:
        return asked
    return _preferred(request.headers.get("accept-language", ""))


@functools.lru_cache(maxsize=1024)
def _preferred(header: str) -> str:
    """The page language an Accept-Language header asks for: browsers send a few distinct
    headers, so each is worked out once."""
    for tag in accepted_languages(header):
        primary = tag.split("-", 1)[0]
        if primary in TEXTS:
            return primary
    return "en"


async def page(request: Request) -> Response:
    """The form, or the answer for ``code``."""
    door: Frontdoor = request.app.state.door
    lang = language(request)
    code = request.query_params.get("code", "")
    if not code.strip():
        return _render(lang, code, None, status=200)
    if len(code) > MAX_CODE:
        return _render(lang, "", _unreadable(TEXTS[lang]["too_long"]), status=400)
    client = request.client.host if request.client else ""
    try:
        door.limiter.take(client)
    except RateLimited as exc:
        door.metrics.rate_limited.inc()
        seconds = max(1, -(-exc.retry_after_ms // 1000))
        response = _render(lang, code, None, status=429, limited=True)
        response.headers["Retry-After"] = str(seconds)
        return response
    def verify(tenant: str, text: str, context: ScanContext, at_ms: int) -> Answers:
        return door.reads.verify(tenant, text, context, at_ms, client=client)

    result = check(door.reads, verify, code, now_ms=now_ms())
    return _render(lang, code, result, status=_STATUS.get(result.outcome, 200))


def _unreadable(reason: str) -> PublicCheck:
    return PublicCheck(Outcome.UNREADABLE, reason=reason)


def _render(lang: str, code: str, result: PublicCheck | None, *, status: int,
            limited: bool = False) -> HTMLResponse:
    switch = {other: "/check" + (f"?{urlencode({'code': code, 'lang': other})}" if code
                                 else f"?lang={other}")
              for other in TEXTS if other != lang}
    outcome = result.outcome.value if result is not None else ""
    body = _PAGE.render(t=_WORDS[lang], lang=lang, code=code, result=result, switch=switch,
                        limited=limited, outcome=outcome, mark=_MARKS.get(outcome, ""),
                        rows=_rows(result), warnings=_warnings(result, lang))
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _rows(result: PublicCheck | None) -> list[tuple[str, str]]:
    """(field, value) of what the product section shows, in order, the empty ones left out."""
    if result is None or result.product is None:
        return []
    p = result.product
    rows = [("name", p.name), ("generic_name", p.generic_name), ("strength", p.strength),
            ("pack_spec", p.pack_spec), ("dosage_form", p.dosage_form), ("mah", p.mah),
            ("manufacturer", p.manufacturer), ("approval_number", p.approval_number),
            ("lot", result.lot), ("expires_on", result.expires_on), ("code", result.code)]
    return [(name, value) for name, value in rows if value]


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
