"""The check page's markup, built by joining text escaped once: the parts that do not change
with the answer (the head, the style, each language's words) are made at import, so a view only
escapes and joins what the answer says."""

from __future__ import annotations

import functools
import re

from markupsafe import escape as _escape

from frontdoor.texts import TEXTS

_STYLE = """\
:root { --ink: #1b1f24; --muted: #5b6470; --line: #d9dee4; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.5 system-ui, -apple-system, "PingFang SC", "Noto Sans CJK SC",
       "Microsoft YaHei", sans-serif; color: var(--ink); background: var(--bg); }
header { display: flex; justify-content: space-between; align-items: center;
         padding: 12px 16px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header a { color: #0b57d0; text-decoration: none; font-size: 15px; padding: 6px 10px;
           border: 1px solid var(--line); border-radius: 6px; }
main { max-width: 560px; margin: 0 auto; padding: 16px; }
.verdict { border-radius: 10px; padding: 16px; margin-bottom: 16px; color: #fff; }
.verdict .mark { font-size: 34px; font-weight: 700; line-height: 1; margin-right: 10px; }
.verdict h2 { display: flex; align-items: center; margin: 0 0 6px; font-size: 26px; }
.verdict p { margin: 0; overflow-wrap: anywhere; }
.genuine { background: #146c2e; }
.caution, .known_foreign { background: #8a5300; }
.do_not_use, .not_genuine { background: #b3261e; }
.product_only { background: #0b57d0; }
.unreadable { background: #5b6470; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px;
          padding: 12px 16px; margin-bottom: 16px; }
section h3 { margin: 0 0 8px; font-size: 17px; }
dl { display: grid; grid-template-columns: minmax(7em, 40%) 1fr; gap: 6px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
ul.warnings { margin: 0; padding-left: 20px; }
ul.warnings li { margin-bottom: 6px; }
.note { color: var(--muted); font-size: 14px; }
form label { display: block; font-weight: 600; margin-bottom: 6px; }
form input { width: 100%; font-size: 17px; padding: 12px; border: 1px solid #9aa3ad;
             border-radius: 8px; }
form button { margin-top: 10px; width: 100%; font-size: 18px; padding: 12px; border: 0;
              border-radius: 8px; background: #0b57d0; color: #fff; }
"""
#: The page's words escaped once.
WORDS = {lang: {key: str(_escape(text)) for key, text in texts.items()}
         for lang, texts in TEXTS.items()}
# Beside the words and the colour, a symbol: none of the three alone carries the verdict.
_MARKS = {"genuine": "✓", "caution": "!", "do_not_use": "✕", "not_genuine": "✕",
          "product_only": "i", "unreadable": "?", "known_foreign": "i"}


def _head(lang: str) -> tuple[str, str]:
    """What comes before and after the title's verdict words, in ``lang``."""
    t = WORDS[lang]
    before = (f'<!doctype html>\n<html lang="{t["html_lang"]}">\n<head>\n<meta charset="utf-8">\n'
              '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
              '<meta name="robots" content="noindex">\n<title>')
    after = (f'{t["title"]}</title>\n<style>\n{_STYLE}</style>\n</head>\n<body>\n<header>\n'
             f'  <h1>{t["title"]}</h1>\n')
    return before, after


def _tail(lang: str) -> tuple[str, str]:
    """The form around the code typed in, and the page's end, in ``lang``."""
    t = WORDS[lang]
    before = ('  <section>\n    <form method="get" action="/check">\n'
              f'      <label for="code">{t["label"]}</label>\n'
              '      <input id="code" name="code" value="')
    after = (f'" placeholder="{t["placeholder"]}" autocomplete="off" autocapitalize="off" '
             'spellcheck="false" maxlength="4096" required>\n'
             f'      <input type="hidden" name="lang" value="{lang}">\n'
             f'      <button type="submit">{t["submit"]}</button>\n    </form>\n'
             f'    <p class="note">{t["intro"]}</p>\n  </section>\n'
             f'  <p class="note">{t["privacy"]}</p>\n</main>\n</body>\n</html>')
    return before, after


_SPECIAL = re.compile("[&<>\"']")


def escape(text: str) -> str:
    """``text`` fit for HTML text and attribute values; most of a page's texts need nothing
    escaped, and looking costs a third of escaping."""
    return text if _SPECIAL.search(text) is None else str(_escape(text))


_HEADS = {lang: _head(lang) for lang in TEXTS}
_TAILS = {lang: _tail(lang) for lang in TEXTS}
_LIMITED = {lang: '  <div class="verdict unreadable" role="alert"><h2><span class="mark" '
                  f'aria-hidden="true">…</span>{WORDS[lang]["limited"]}</h2></div>\n'
            for lang in TEXTS}


def page(lang: str, code: str, switch: dict[str, str], *, outcome: str = "",
         checked: str = "", reason: str = "", repaired: str = "", rows: str = "",
         warnings: list[tuple[str, str]] | None = None, first_check: bool = False,
         product: bool = False, limited: bool = False) -> str:
    """The whole page: the form alone (no ``outcome``), the rate limit's notice, or an answer.
    ``code`` is the text typed in, ``checked`` the code it was read as, ``rows`` the product
    section's (``rows``). Every other argument is plain text, escaped here; ``outcome`` and
    ``warnings``' names are the page's own identifiers."""
    t = WORDS[lang]
    head, title_end = _HEADS[lang]
    parts = [head]
    if outcome and not limited:
        parts += (t[outcome], " · ")
    parts.append(title_end)
    for other, href in switch.items():
        parts.append(f'  <a href="{escape(href)}" hreflang="{other}" lang="{other}">'
                     f'{t["switch"]}</a>\n')
    parts.append("</header>\n<main>\n")
    if limited:
        parts.append(_LIMITED[lang])
    elif outcome:
        parts.append(f'  <div class="verdict {outcome}" role="status" data-outcome="{outcome}">\n'
                     f'    <h2><span class="mark" aria-hidden="true">{_MARKS[outcome]}</span>'
                     f'{t[outcome]}</h2>\n    <p>{t[outcome + "_detail"]}</p>\n')
        if reason and outcome in ("unreadable", "known_foreign"):
            if not t["reason_in_english"]:
                parts.append(f'    <p class="reason">{escape(reason)}</p>\n')
            else:  # the reader's words, in English: said so, and marked for screen readers
                parts.append(f'    <p class="reason">{t["reason_in_english"]}'
                             f'<span lang="en">{escape(reason)}</span></p>\n')
        if repaired:
            parts.append(f'    <p class="repaired" data-repaired="{escape(repaired)}">'
                         f'{escape(TEXTS[lang]["repaired"].format(code=checked))}</p>\n')
        parts.append("  </div>\n")
        if warnings:
            parts.append(f'  <section class="warnings-box">\n    <h3>{t["warnings"]}</h3>\n'
                         '    <ul class="warnings">\n')
            parts += [f'      <li data-warning="{name}">{escape(text)}</li>\n'
                      for name, text in warnings]
            parts.append("    </ul>\n  </section>\n")
        if product:
            parts.append(f'  <section class="product">\n    <h3>{t["product"]}</h3>\n    <dl>\n')
            parts.append(rows)
            parts.append("    </dl>\n")
            if first_check:
                parts.append(f'    <p class="note">{t["checked_first"]}</p>\n')
            parts.append("  </section>\n")
    form, end = _TAILS[lang]
    parts += (form, escape(code), end)
    return "".join(parts)


def row(lang: str, name: str, value: str) -> str:
    """One row of the product section: the field's name in ``lang`` and its value."""
    return f'      <dt>{WORDS[lang][name]}</dt><dd data-field="{name}">{escape(value)}</dd>\n'


@functools.lru_cache(maxsize=4096)
def rows(lang: str, fields: tuple[tuple[str, str], ...]) -> str:
    """The rows of ``fields`` (name, value), the empty ones left out: a product's and its
    batch's rows are the same on every pack's page, so each is made once."""
    return "".join(row(lang, name, value) for name, value in fields if value)
