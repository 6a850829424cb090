"""The check page's markup: whatever a visitor types and whatever a manufacturer registered is
shown as text, never as markup, in every place the page repeats it."""

from __future__ import annotations

import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdoor import check_page
from frontdoor.check_page import render
from tracecore.usecases.public_check import Outcome, PublicCheck, PublicProduct, Warning

_HOSTILE = "<script>alert('x')</script>\"&"


def test_a_typed_code_is_escaped_in_the_form_and_the_language_switch() -> None:
    """A code with HTML in it comes back escaped in the form's value and URL-encoded in the
    link to the other language; no tag of it survives."""
    page = render("en", _HOSTILE, PublicCheck(Outcome.UNREADABLE, reason=_HOSTILE))
    assert "<script>" not in page
    assert 'value="&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;&amp;"' in page
    assert "/check?code=%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E%22%26&amp;lang=zh" in page
    assert '<p class="reason">&lt;script&gt;' in page


def test_registered_product_text_is_escaped_and_every_row_shown() -> None:
    """Product fields holding HTML are shown as text; the rows, warnings and verdict of a
    genuine pack checked before are all on the page, in Chinese when asked."""
    product = PublicProduct(_HOSTILE, "阿莫西林", "0.25g", "24粒/盒", "胶囊", "MAH <b>", "", "H1")
    result = PublicCheck(Outcome.CAUTION, "(01)09501101530027(21)ABC", "", product, "L<1",
                         "2029-06-30", (Warning.ALREADY_DISPENSED, Warning.CHECKED_BEFORE), 3,
                         1_700_000_000_000, "44")
    page = render("zh", "(01)09501101530027(21)ABC", result)
    assert "<script>" not in page and "<b>" not in page
    assert '<dd data-field="name">&lt;script&gt;' in page
    assert '<dd data-field="lot">L&lt;1</dd>' in page
    assert '<dd data-field="generic_name">阿莫西林</dd>' in page
    assert 'data-field="manufacturer"' not in page
    assert 'data-outcome="caution"' in page and "<title>请注意 · 药品追溯码查验</title>" in page
    assert 'data-warning="already_dispensed"' in page
    assert "已被查询 3 次，首次查询于 2023-11-14，地点：广东省" in page


_TEXT = st.text(st.sampled_from("AB(01)9 /&<>\"'%+é中\x00;=#?"), max_size=24)
_PRODUCTS = st.one_of(st.none(), st.builds(PublicProduct, *[_TEXT] * 8))
_RESULTS = st.one_of(st.none(), st.builds(
    PublicCheck, st.sampled_from(Outcome), _TEXT, _TEXT, _PRODUCTS, _TEXT,
    st.sampled_from(["", "2029-06-30"]), st.lists(st.sampled_from(Warning), max_size=3,
                                                  unique=True).map(tuple),
    st.integers(0, 4), st.integers(0, 2_000_000_000_000), st.sampled_from(["", "11", "44"]),
    st.sampled_from(["", "", "case"])))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(lang=st.sampled_from(["en", "zh"]), code=_TEXT, result=_RESULTS, limited=st.booleans())
def test_a_page_made_from_a_kept_template_is_the_page_made_whole(
        lang: str, code: str, result: PublicCheck | None, limited: bool) -> None:
    """Pages kept with a place for the code read, for any code and any registered text
    (markup, the template's own marker), exactly as the page made from scratch, the first time
    and every time after."""
    whole = check_page._page(lang, urllib.parse.quote_plus(code), code, result, limited)
    assert render(lang, code, result, limited=limited) == whole
    assert render(lang, code, result, limited=limited) == whole


@given(st.text(max_size=40))
def test_the_language_switch_encodes_a_code_as_urllib_does(text: str) -> None:
    """The code in the language switch's link is URL-encoded exactly as
    ``urllib.parse.quote_plus`` encodes it."""
    assert check_page.quote_plus(text) == urllib.parse.quote_plus(text)
