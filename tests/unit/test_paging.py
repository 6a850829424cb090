"""Paging: page sizes and page tokens are read one way by every listing."""

from __future__ import annotations

import pytest

from tracecore.errors import InvalidArgument
from tracecore.paging import DEFAULT_PAGE, MAX_PAGE, next_token, page_size, page_start


def test_a_page_size_of_zero_means_the_default_and_the_limit_is_enforced() -> None:
    """0 asks for the default page; more than the limit is refused, naming page_size."""
    assert page_size(0) == DEFAULT_PAGE
    assert page_size(7) == 7
    assert page_size(MAX_PAGE) == MAX_PAGE
    with pytest.raises(InvalidArgument) as refused:
        page_size(MAX_PAGE + 1)
    assert refused.value.field == "page_size"


def test_a_token_resumes_where_the_last_page_stopped() -> None:
    """No token starts at the first position; a token given out resumes at its position."""
    assert page_start("", last=10) == 1
    assert page_start(next_token(7), last=10) == 7


@pytest.mark.parametrize("token", ["x", "-1", "0", "11", "1" * 21, "٣", "1e3", " 5"])
def test_a_token_the_service_never_gave_out_is_refused(token: str) -> None:
    """Text, out-of-range or non-ASCII digits are refused as page_token, not read."""
    with pytest.raises(InvalidArgument) as refused:
        page_start(token, last=10)
    assert refused.value.field == "page_token"
