"""``google.api.http`` path templates: parsed once at start, matched per request.

The grammar is the one in ``google/api/http.proto``::

    Template  = "/" Segments [ Verb ] ;
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

A template compiles to a flat *pattern*: one element per URL segment, either a literal or ``*``, with an
optional final ``**``. Variables are spans of that pattern, so ``/v1/{name=shelves/*}/books`` is the pattern
``("v1", "shelves", "*", "books")`` with ``name`` capturing segments 1 and 2. Matching is then a length check,
a few string comparisons and slicing; nothing is compiled per request.

Paths are matched *as sent*, still percent-encoded (ASGI's ``raw_path``): literals compare with the encoded
text, and only captured values are decoded, since decoding first would turn ``%2F`` into a separator.

:class:`Router` indexes many templates in a trie keyed by literal segments, and prefers, at each segment
from the left, a literal over a single-segment wildcard over ``**`` (the order of
:attr:`PathTemplate.specificity`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar
from urllib.parse import unquote_to_bytes

from mesh import InvalidField

__all__ = [
    "Literal",
    "PathTemplate",
    "RouteConflictError",
    "Router",
    "TemplateError",
    "TemplatePart",
    "Variable",
    "Wildcard",
]

T = TypeVar("T")

# RFC 3986 pchar, minus the characters the grammar gives a meaning: "*" (wildcards), ":" (the verb),
# "/" and the braces. "%" only as a full escape, so a literal is always valid encoded text.
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@]|%[0-9A-Fa-f]{2})+")
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The capturing group keeps the escaped slashes in re.split's output, so they can be put back verbatim.
_ESCAPED_SLASH = re.compile(r"(%2[Ff])")

_STAR = "*"
_DOUBLE_STAR = "**"
# Specificity ranks of a pattern element: lower is more specific.
_RANK_LITERAL, _RANK_STAR, _RANK_DOUBLE_STAR = 0, 1, 2


class TemplateError(ValueError):
    """A path template does not follow the ``google.api.http`` grammar (found when the routes are built)."""


class RouteConflictError(ValueError):
    """Two routes of one HTTP method would match exactly the same paths."""


@dataclass(frozen=True, slots=True)
class _Capture:
    """One variable: the pattern span it covers and how its text is decoded."""

    field_path: str
    json_path: str  # for error messages, which name fields the way clients spell them
    start: int
    stop: int | None  # None: up to the end of the path (the variable ends in "**")
    multi: bool  # several segments: "%2F" stays encoded (http.proto's reserved expansion)


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal segment of a template, still percent-encoded as the grammar allows it."""

    text: str


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{field_path}`` or ``{field_path=pattern}``: the request field it sets and the segments it takes.

    ``pattern`` is the variable's segments as written (``"*"`` for a bare ``{id}``, ``"projects/*"``,
    ``"**"``); ``multi`` says the value may span segments ('/' included).
    """

    field_path: str
    json_path: str
    pattern: str
    multi: bool


@dataclass(frozen=True, slots=True)
class Wildcard:
    """An anonymous ``*`` or ``**``: matched, but bound to no field."""

    pattern: str


TemplatePart = Literal | Variable | Wildcard


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed path template; build it with :meth:`parse`.

    ``pattern`` has one element per URL segment: a literal (still percent-encoded), ``"*"``, or a final
    ``"**"`` matching zero or more segments. ``variables`` lists the captured field paths in template
    order. ``literal_prefix`` is the run of literal segments the template starts with.
    ``specificity`` sorts the more specific template first when several match one path: templates with
    a verb, then, from the left, a literal segment before ``*`` before ``**``, a shorter pattern before a
    longer one ending in ``**``.
    """

    source: str
    verb: str | None
    variables: tuple[str, ...]
    pattern: tuple[str, ...]
    literal_prefix: tuple[str, ...] = field(compare=False)
    specificity: tuple[int, ...] = field(compare=False)
    _captures: tuple[_Capture, ...] = field(compare=False, repr=False)
    _literals: tuple[tuple[int, str], ...] = field(compare=False, repr=False)
    _fixed: int = field(compare=False, repr=False)  # segments a path needs besides what "**" takes
    _tail: bool = field(compare=False, repr=False)  # the pattern ends in "**"
    _verb_suffix: str = field(compare=False, repr=False)

    @classmethod
    def parse(cls, template: str) -> PathTemplate:
        """Parse ``template``; raise :class:`TemplateError` if it is not valid."""
        parser = _Parser(template)
        parser.template()
        pattern = tuple(parser.pattern)
        verb = parser.verb
        tail = bool(pattern) and pattern[-1] == _DOUBLE_STAR
        literals = tuple((i, p) for i, p in enumerate(pattern) if p not in (_STAR, _DOUBLE_STAR))
        prefix: list[str] = []
        for element in pattern:
            if element in (_STAR, _DOUBLE_STAR):
                break
            prefix.append(element)
        ranks = (
            _RANK_STAR if p == _STAR else _RANK_DOUBLE_STAR if p == _DOUBLE_STAR else _RANK_LITERAL
            for p in pattern
        )
        return cls(
            source=template,
            verb=verb,
            variables=tuple(c.field_path for c in parser.captures),
            pattern=pattern,
            literal_prefix=tuple(prefix),
            specificity=(0 if verb is not None else 1, *ranks),
            _captures=tuple(parser.captures),
            _literals=literals,
            _fixed=len(pattern) - 1 if tail else len(pattern),
            _tail=tail,
            _verb_suffix="" if verb is None else ":" + verb,
        )

    def match(self, path: str) -> dict[str, str] | None:
        """Match a percent-encoded request path (no query string).

        Returns the decoded value of each variable by field path, or ``None`` if the path does not
        match. Raises :class:`~mesh.InvalidField` when a captured value is not valid percent-encoded
        UTF-8: the path is meant for this route, but the value cannot be read.
        """
        suffix = self._verb_suffix
        if suffix:
            if not path.endswith(suffix):
                return None
            path = path[: -len(suffix)]
        segments = _split(path)
        if segments is None:
            return None
        count = len(segments)
        if count != self._fixed and not (self._tail and count > self._fixed):
            return None
        for index, literal in self._literals:
            if segments[index] != literal:
                return None
        return self._extract(segments)

    def _extract(self, segments: list[str]) -> dict[str, str]:
        """Decode the variables out of ``segments``, which are known to match the pattern."""
        values: dict[str, str] = {}
        for capture in self._captures:
            if capture.multi:
                value = "/".join(segments[capture.start : capture.stop])
                if "%" in value:
                    value = _decode_multi(value, capture.json_path)
            else:
                value = segments[capture.start]
                if "%" in value:  # most ids are plain: skip the call
                    value = _decode_segment(value, capture.json_path)
            values[capture.field_path] = value
        return values

    @property
    def parts(self) -> tuple[TemplatePart, ...]:
        """The template as its literals, variables and anonymous wildcards, left to right (no verb).

        What documents a route (gateway/openapi.py) reads, so the docs are the router's own parse.
        """
        starts = {capture.start: capture for capture in self._captures}
        parts: list[TemplatePart] = []
        index = 0
        while index < len(self.pattern):
            capture = starts.get(index)
            if capture is not None:
                stop = len(self.pattern) if capture.stop is None else capture.stop
                pattern = "/".join(self.pattern[index:stop])
                parts.append(Variable(capture.field_path, capture.json_path, pattern, capture.multi))
                index = stop
                continue
            element = self.pattern[index]
            parts.append(Wildcard(element) if element in (_STAR, _DOUBLE_STAR) else Literal(element))
            index += 1
        return tuple(parts)

    def __str__(self) -> str:
        return self.source


def _split(path: str) -> list[str] | None:
    """The segments of ``path``, or ``None`` if it is not absolute or has an empty segment."""
    if path == "/":
        # The only way to spell "zero segments", which "/**" and "/{x=**}" match.
        return []
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    # A trailing slash or "//" is not the same resource: refuse it rather than guess.
    if "" in segments:
        return None
    return segments


def _decode_segment(raw: str, json_path: str) -> str:
    """Percent-decode one segment fully (``%2F`` becomes ``/``)."""
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw) is not None:
        raise InvalidField(json_path, "has a malformed percent-escape")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        raise InvalidField(json_path, "is not UTF-8 once percent-decoded") from None


def _decode_multi(raw: str, json_path: str) -> str:
    """Percent-decode several segments, leaving ``%2F``/``%2f`` as sent so slashes stay distinguishable."""
    if "%" not in raw:
        return raw
    parts = _ESCAPED_SLASH.split(raw)
    # Even indexes are the text between escaped slashes; "%2F" is ASCII, so it never splits a UTF-8 char.
    parts[::2] = [_decode_segment(part, json_path) for part in parts[::2]]
    return "".join(parts)


def _json_path(field_path: str) -> str:
    """``board_id.owner_id`` → ``boardId.ownerId``, protoc's default JSON names."""
    return ".".join(_json_name(part) for part in field_path.split("."))


def _json_name(name: str) -> str:
    out: list[str] = []
    upper = False
    for char in name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out)


class _Parser:
    """Recursive descent over the grammar; appends to a flat pattern as it goes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.pattern: list[str] = []
        self.captures: list[_Capture] = []
        self.verb: str | None = None

    def fail(self, reason: str) -> NoReturn:
        raise TemplateError(f"path template {self.text!r}: {reason} (at offset {self.pos})")

    def template(self) -> None:
        if not self.text.startswith("/"):
            self.fail("must start with '/'")
        self.pos = 1
        self.segments(in_variable=False)
        text = self.text
        if self.pos < len(text):
            if text[self.pos] != ":":
                self.fail(f"unexpected {text[self.pos]!r}")
            self.pos += 1
            found = _LITERAL.match(text, self.pos)
            if found is None or found.end() != len(text):
                self.fail("the verb must be a literal at the end")
            self.verb = found.group()
        self.check_fields()

    def segments(self, *, in_variable: bool) -> None:
        while True:
            self.segment(in_variable=in_variable)
            if not self.text.startswith("/", self.pos):
                return
            self.pos += 1

    def segment(self, *, in_variable: bool) -> None:
        if self.pattern and self.pattern[-1] == _DOUBLE_STAR:
            self.fail("'**' must be the last segment")
        text, pos = self.text, self.pos
        if text.startswith(_DOUBLE_STAR, pos):
            self.pattern.append(_DOUBLE_STAR)
            self.pos += 2
        elif text.startswith(_STAR, pos):
            self.pattern.append(_STAR)
            self.pos += 1
        elif text.startswith("{", pos):
            if in_variable:
                self.fail("a variable cannot contain another")
            self.variable()
        else:
            found = _LITERAL.match(text, pos)
            if found is None:
                self.fail("expected a segment")
            self.pattern.append(found.group())
            self.pos = found.end()

    def variable(self) -> None:
        self.pos += 1  # "{"
        found = _FIELD_PATH.match(self.text, self.pos)
        if found is None:
            self.fail("expected a field path")
        self.pos = found.end()
        start = len(self.pattern)
        if self.text.startswith("=", self.pos):
            self.pos += 1
            self.segments(in_variable=True)
        else:
            self.pattern.append(_STAR)
        if not self.text.startswith("}", self.pos):
            self.fail("expected '}'")
        self.pos += 1
        tail = self.pattern[-1] == _DOUBLE_STAR
        self.captures.append(
            _Capture(
                field_path=found.group(),
                json_path=_json_path(found.group()),
                start=start,
                stop=None if tail else len(self.pattern),
                multi=tail or len(self.pattern) - start > 1,
            )
        )

    def check_fields(self) -> None:
        # One field bound twice, or a field and a field inside it, would make the request ambiguous.
        paths = sorted(c.field_path for c in self.captures)
        for before, after in itertools.pairwise(paths):
            if after == before or after.startswith(before + "."):
                self.fail(
                    f"fields {before!r} and {after!r} overlap"
                    if after != before
                    else f"field {before!r} is bound twice"
                )


class _Node(Generic[T]):
    """One level of the router trie: children by literal segment, a ``*`` child, and routes ending here."""

    __slots__ = ("ends", "literals", "star", "tails", "verbs")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[T]] = {}
        self.star: _Node[T] | None = None
        # Routes keyed by verb (None: no verb). `ends` consume exactly the path; `tails` end in "**".
        self.ends: dict[str | None, tuple[PathTemplate, T]] = {}
        self.tails: dict[str | None, tuple[PathTemplate, T]] = {}
        self.verbs: set[str] = set()  # only used on a root: the verbs any route of the method has


class Router(Generic[T]):
    """A table of (HTTP method, path template) routes, matched most-specific first.

    Among the templates of one method matching a path, :meth:`find` returns the one with the smallest
    :attr:`PathTemplate.specificity`. A trie over literal segments keeps a lookup to one dict probe per
    segment in the common case; it backtracks only where a literal and a wildcard branch both exist.
    """

    def __init__(self) -> None:
        self._roots: dict[str, _Node[T]] = {}

    def add(self, method: str, template: PathTemplate, target: T) -> None:
        """Route ``method`` (upper case, as requests spell it) and ``template`` to ``target``.

        Raises :class:`RouteConflictError` if a route of the method already has the same pattern and verb.
        """
        root = self._roots.setdefault(method, _Node())
        node = root
        for element in template.pattern:
            if element == _DOUBLE_STAR:
                break
            if element == _STAR:
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                node = node.literals.setdefault(element, _Node())
        table = node.tails if template._tail else node.ends
        existing = table.get(template.verb)
        if existing is not None:
            raise RouteConflictError(
                f"{method} {template.source!r} matches the same paths as {existing[0].source!r}"
            )
        table[template.verb] = (template, target)
        if template.verb is not None:
            root.verbs.add(template.verb)

    def find(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The target and decoded variables of the best route for ``method`` and ``path``, or ``None``.

        ``path`` is percent-encoded, without the query string. Raises :class:`~mesh.InvalidField` if the
        chosen route captures a value that is not valid percent-encoded UTF-8.
        """
        root = self._roots.get(method)
        if root is None:
            return None
        found = _lookup(root, path)
        if found is None:
            return None
        (template, target), segments = found
        return target, template._extract(segments)

    def allowed_methods(self, path: str) -> set[str]:
        """The methods having a route for ``path``: empty means 404, otherwise a 405 lists them."""
        return {method for method, root in self._roots.items() if _lookup(root, path) is not None}


def _lookup(root: _Node[T], path: str) -> tuple[tuple[PathTemplate, T], list[str]] | None:
    segments = _split(path)
    if segments is None:
        return None
    count = len(segments)
    if root.verbs and count:
        # With a verb the last segment is cut at its last colon; verb routes are tried first, as their
        # specificity says, so "/v1/x:cancel" prefers "/v1/{id}:cancel" over "/v1/{id}".
        last = segments[-1]
        colon = last.rfind(":")
        if colon >= 0 and (colon or count == 1) and (verb := last[colon + 1 :]) in root.verbs:
            verb_segments = segments.copy()
            if colon:
                verb_segments[-1] = last[:colon]
            else:
                del verb_segments[-1]  # "/:verb" is zero segments and the verb
            route = _search(root, verb_segments, 0, len(verb_segments), verb)
            if route is not None:
                return route, verb_segments
    route = _search(root, segments, 0, count, None)
    if route is None:
        return None
    return route, segments


def _search(
    node: _Node[T], segments: list[str], index: int, count: int, verb: str | None
) -> tuple[PathTemplate, T] | None:
    """Depth-first: literal child, then ``*`` child, then a ``**`` route here.

    It loops instead of recursing where a node offers no alternative, which is most of them.
    """
    while True:
        if index == count:
            route = node.ends.get(verb)
            if route is None and node.tails:
                route = node.tails.get(verb)
            return route
        child = node.literals.get(segments[index])
        star = node.star
        if child is not None:
            if star is None and not node.tails:
                node = child
                index += 1
                continue
            route = _search(child, segments, index + 1, count, verb)
            if route is not None:
                return route
        if star is not None:
            if not node.tails:
                node = star
                index += 1
                continue
            route = _search(star, segments, index + 1, count, verb)
            if route is not None:
                return route
        return node.tails.get(verb) if node.tails else None
