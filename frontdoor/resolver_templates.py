"""Resolver answers filled in from a template per product and request shape.

The packs of one product differ in their Digital Links only by the values of their key
qualifiers and data attributes (lot, serial, expiry): the answer to one is the answer to
another with those values swapped. A request's shape is its path and query with those values
taken out; the answer to a shape is made once, by the resolver, for stand-in values, and kept
as text with a hole where each stand-in was (``Template``). A request of a known shape whose
Digital Link parses then gets that text with its own values in the holes, without the
resolver working out the same links, canonical URI and headers again.

Only values that percent-encoding leaves alone (RFC 3986 unreserved characters, as serials and
most lots are) are taken out: they are written the same wherever the answer quotes them (in
the canonical URI, in the check link that percent-encodes it, in a query passed on), so a hole
is filled with the value as it is. A template is kept only when, filled with the values of the
request that made it, it is that request's answer made whole, byte for byte; else the shape is
kept as one that is made whole each time. Templates are kept like answers
(``frontdoor.answer_cache``): while the catalogue records they were made from are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from frontdoor.answer_cache import Answer, AnswerCache, Key, Recording
from tracecore import gs1
from tracecore.errors import InvalidArgument, NotFound, ParseError
from tracecore.usecases.resolver import Catalogue

#: ``made(path, query, made_from)``: the answer to a Digital Link made whole by the resolver,
#: reading the catalogue through ``made_from``.
Made = Callable[[str, str, Recording], Answer]

#: Values written the same percent-encoded or not: the only ones a template leaves a hole for.
_PLAIN = re.compile(rb"[A-Za-z0-9_.~-]+")
#: The key qualifiers a Digital Link path may carry after /01/{gtin}.
_QUALIFIERS = frozenset({b"22", b"10", b"21"})
#: Stand-ins for numeric values of six digits (the dates of AIs 11 to 17: YYMMDD).
_SIX_DIGITS = ("491231", "381130", "271031", "160930", "050831")


@dataclass(frozen=True, slots=True)
class Shape:
    """A Digital Link request with its pack's values taken out."""

    path: bytes
    query: bytes
    holes: tuple[tuple[str, str], ...]
    """(AI, value) of each value taken out, in the order they are in the request."""

    def filled(self, values: tuple[str, ...]) -> tuple[str, str]:
        """The request's path and query with ``values`` put back in."""
        values_left = list(values)
        segments = self.path.split(b"/")
        for i in range(4, len(segments), 2):
            segments[i] = values_left.pop(0).encode()
        fields = self.query.split(b"&") if self.query else []
        for j, field in enumerate(fields):
            name, _, _ = field.partition(b"=")
            if name.isdigit():
                fields[j] = name + b"=" + values_left.pop(0).encode()
        return b"/".join(segments).decode(), b"&".join(fields).decode()


def shape_of(raw_path: bytes, query: bytes) -> Shape | None:
    """The shape of ``/01/{gtin}/…?…``: each key qualifier's value and each numeric
    parameter's (a data attribute) taken out; None if the request is of another form, has none
    of those values or one of them is not plain."""
    segments = raw_path.split(b"/")
    if len(segments) < 3 or len(segments) % 2 == 0 or segments[0] or segments[1] != b"01":
        return None
    holes = []
    for i in range(3, len(segments), 2):
        value = segments[i + 1]
        if segments[i] not in _QUALIFIERS or not _PLAIN.fullmatch(value):
            return None
        holes.append((segments[i].decode(), value.decode()))
        segments[i + 1] = b""
    fields = query.split(b"&") if query else []
    for j, field in enumerate(fields):
        name, equals, value = field.partition(b"=")
        if name.isdigit():
            if not equals or not _PLAIN.fullmatch(value):
                return None
            holes.append((name.decode(), value.decode()))
            fields[j] = name + b"="
    if not holes:
        return None  # one answer for every request of it: the kept answer is its template
    return Shape(b"/".join(segments), b"&".join(fields), tuple(holes))


@dataclass(frozen=True, slots=True)
class Template:
    """An answer as text with holes: each header value and the body are their literal parts,
    with hole ``holes[k]`` between parts ``k`` and ``k + 1``."""

    status: int
    headers: tuple[tuple[bytes, tuple[bytes, ...], tuple[int, ...]], ...]
    body: tuple[tuple[bytes, ...], tuple[int, ...]]

    @property
    def size(self) -> int:
        """Its bytes, as a kept answer's are counted."""
        return sum(len(name) + sum(map(len, parts)) for name, parts, _ in self.headers) + sum(
            map(len, self.body[0]))

    def answer(self, values: tuple[bytes, ...]) -> Answer:
        """The answer with ``values`` in the holes (and the length of the body so made)."""
        body = _joined(self.body[0], self.body[1], values)
        headers = []
        for name, parts, holes in self.headers:
            if name == b"content-length":
                headers.append((name, b"%d" % len(body)))
            elif holes:
                headers.append((name, _joined(parts, holes, values)))
            else:
                headers.append((name, parts[0]))
        return Answer(self.status, headers, body)


def _joined(parts: tuple[bytes, ...], holes: tuple[int, ...], values: tuple[bytes, ...]
            ) -> bytes:
    if not holes:
        return parts[0]
    out = [parts[0]]
    for hole, part in zip(holes, parts[1:], strict=True):
        out += (values[hole], part)
    return b"".join(out)


#: Kept for a shape whose answers are made whole each time.
UNUSABLE = Template(0, (), ((b"",), ()))
#: Kept for a shape seen once: its template is made the next time, so that requests each of a
#: shape of its own (made-up parameters) cost one answer made whole each, not two.
SEEN_ONCE = Template(0, (), ((b"",), ()))


def stand_ins(shape: Shape) -> tuple[str, ...] | None:
    """A value for each hole, valid for its AI, unlike the request's and each other's, made of
    plain characters; None if some AI has none (one this resolver does not read)."""
    chosen: list[str] = []
    for n, (ai, value) in enumerate(shape.holes):
        if value.isdigit():
            candidates = list(_SIX_DIGITS) if len(value) == 6 else [
                str(d) * len(value) for d in (7, 3, 5, 9, 1)]
        else:
            candidates = [f"Qz{n}Xv", f"Wy{n}Jk"]
        found = None
        for candidate in candidates:
            if candidate == value or candidate in chosen:
                continue
            try:
                gs1.check_value(ai, candidate)
            except ParseError:
                continue
            found = candidate
            break
        if found is None:
            return None
        chosen.append(found)
    return tuple(chosen)


def template_of(answer: Answer, stand_in: tuple[str, ...]) -> Template:
    """``answer``, made for the ``stand_in`` values, with a hole wherever one of them is."""
    marks = {value.encode(): n for n, value in enumerate(stand_in)}
    pattern = re.compile(b"(" + b"|".join(
        re.escape(mark) for mark in sorted(marks, key=len, reverse=True)) + b")")

    def split(text: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
        pieces = pattern.split(text)
        return tuple(pieces[0::2]), tuple(marks[m] for m in pieces[1::2])

    headers = tuple((name, *split(value)) for name, value in answer.headers)
    return Template(answer.status, headers, split(answer.body))


def holds(template: Template, values: tuple[str, ...], answer: Answer) -> bool:
    """Whether ``template`` filled with ``values`` is ``answer``, byte for byte."""
    made = template.answer(tuple(v.encode() for v in values))
    return made.status == answer.status and made.headers == answer.headers and (
        made.body == answer.body)


class Templates:
    """The templates of one worker's resolver answers, by root, request shape and the headers
    an answer depends on, each for as long as the catalogue records it was made from hold; at
    most ``max_bytes`` in all."""

    def __init__(self, catalogue: Catalogue, max_bytes: int) -> None:
        self._catalogue = catalogue
        self._kept: AnswerCache[Template] = AnswerCache(max_bytes)

    def __len__(self) -> int:
        return len(self._kept)

    def answer(self, root: str, raw_path: bytes, query: bytes, key: Key, made_from: Recording,
               made: Made) -> Answer:
        """The answer to the request of ``key`` (its root, path and query first, then the
        headers its answer depends on): filled in from its shape's template, or ``made``
        whole (and the shape's template made, the second time it is seen). ``made_from`` notes
        the catalogue reads the answer depends on."""
        path, query_text = raw_path.decode("ascii"), query.decode("ascii")
        shape = shape_of(raw_path, query)
        if shape is None:
            return made(path, query_text, made_from)
        shape_key = (root, shape.path, shape.query, *key[3:])
        template = self._kept.get(shape_key)
        if template is None or template is SEEN_ONCE:
            found = made(path, query_text, made_from)
            if template is None:
                self._kept.put(shape_key, SEEN_ONCE, made_from)
            else:
                self._make(shape, shape_key, found, made)
            return found
        if template is not UNUSABLE:
            try:
                # A template's holes take the values a Digital Link may hold.
                gs1.parse_digital_link(f"{root}{path}" + (f"?{query_text}" if query_text else ""))
            except ParseError:
                pass
            else:
                made_from.seen.extend(self._kept.reads(shape_key))
                return template.answer(tuple(v.encode() for _, v in shape.holes))
        return made(path, query_text, made_from)

    def _make(self, shape: Shape, shape_key: Key, found: Answer, made: Made) -> None:
        """Makes and keeps the template of ``shape`` from the answer made for stand-in values,
        if filled with the request's values it is the request's answer, ``found``."""
        stand_in = stand_ins(shape)
        made_from = Recording(self._catalogue)
        template = UNUSABLE
        if stand_in is not None:
            try:
                answer = made(*shape.filled(stand_in), made_from)
            except (InvalidArgument, NotFound):
                return
            template = template_of(answer, stand_in)
            if not holds(template, tuple(v for _, v in shape.holes), found):
                template = UNUSABLE
        self._kept.put(shape_key, template, made_from)
