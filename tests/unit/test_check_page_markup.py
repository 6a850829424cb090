"""The check page's markup: whatever a visitor types and whatever a manufacturer registered is
shown as text, never as markup, in every place the page repeats it."""

from __future__ import annotations

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
