"""Path templates: the grammar, matching, decoding, specificity and the router."""

from __future__ import annotations

import contextlib
import string
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.template import (
    Literal,
    PathTemplate,
    RouteConflictError,
    Router,
    TemplateError,
    Variable,
    Wildcard,
)
from mesh import InvalidField

# --- parsing ---------------------------------------------------------------------------------------


def test_parse_exposes_the_template() -> None:
    template = PathTemplate.parse("/v1/{parent=projects/*}/boards/{board_id}:archive")

    assert template.source == "/v1/{parent=projects/*}/boards/{board_id}:archive"
    assert template.verb == "archive"
    assert template.variables == ("parent", "board_id")
    assert template.pattern == ("v1", "projects", "*", "boards", "*")
    assert template.literal_prefix == ("v1", "projects")
    assert str(template) == template.source


def test_templates_compare_by_source() -> None:
    assert PathTemplate.parse("/a/{b}") == PathTemplate.parse("/a/{b}")
    assert len({PathTemplate.parse("/a/{b}"), PathTemplate.parse("/a/{b}")}) == 1
    assert PathTemplate.parse("/a/{b}") != PathTemplate.parse("/a/{c}")


@pytest.mark.parametrize(
    ("source", "pattern", "variables"),
    [
        ("/health", ("health",), ()),
        ("/.well-known/jwks.json", (".well-known", "jwks.json"), ()),
        ("/api/boards/{id}", ("api", "boards", "*"), ("id",)),
        ("/api/boards/{id=*}", ("api", "boards", "*"), ("id",)),
        ("/a/*/b", ("a", "*", "b"), ()),
        ("/a/**", ("a", "**"), ()),
        ("/{name=**}", ("**",), ("name",)),
        ("/v1/{name=shelves/*/books/**}", ("v1", "shelves", "*", "books", "**"), ("name",)),
        ("/v1/{book.shelf.id}/x", ("v1", "*", "x"), ("book.shelf.id",)),
        ("/v1/{a}/{b}", ("v1", "*", "*"), ("a", "b")),
        ("/v1/%7Euser/{a}", ("v1", "%7Euser", "*"), ("a",)),
    ],
)
def test_parse_valid(source: str, pattern: tuple[str, ...], variables: tuple[str, ...]) -> None:
    template = PathTemplate.parse(source)

    assert template.pattern == pattern
    assert template.variables == variables
    assert template.verb is None


@pytest.mark.parametrize(
    "source",
    [
        "",
        "api/boards",
        "/",
        "/api/",
        "//api",
        "/api//boards",
        "/{",
        "/{id",
        "/{}",
        "/{id}}",
        "/{1id}",
        "/{a.}",
        "/{a=}",
        "/{a=b/}",
        "/{a={b}}",
        "/**/a",
        "/{a=**}/b",
        "/{a=**/b}",
        "/***",
        "/a*",
        "/{a}/{a}",
        "/{a}/{a.b}",
        "/a:",
        "/a:b:c",
        "/a:b/c",
        "/a:*",
        "/a b",
        "/a%2",
        "/a%zz",
        "/a?b",
        "/a#b",
        "/café",
    ],
)
def test_parse_invalid(source: str) -> None:
    with pytest.raises(TemplateError, match="path template"):
        PathTemplate.parse(source)


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


# --- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "path", "expected"),
    [
        ("/api/boards/{id}", "/api/boards/42", {"id": "42"}),
        ("/api/boards/{id}", "/api/boards/", None),
        ("/api/boards/{id}", "/api/boards", None),
        ("/api/boards/{id}", "/api/boards/42/", None),
        ("/api/boards/{id}", "/api/boards/42/x", None),
        ("/api/boards/{id}", "/api//boards/42", None),
        ("/api/boards/{id}", "api/boards/42", None),
        ("/api/boards/{id}", "", None),
        ("/api/boards/{id}", "/API/boards/42", None),
        ("/api/boards/{id}", "/api/Boards/42", None),
        ("/health", "/health", {}),
        ("/health", "/health/", None),
        ("/a/*/c", "/a/b/c", {}),
        ("/a/*/c", "/a/b/d", None),
        # "**": zero, one or many segments, but never an empty one.
        ("/a/**", "/a", {}),
        ("/a/**", "/a/b", {}),
        ("/a/**", "/a/b/c/d", {}),
        ("/a/**", "/a/", None),
        ("/a/**", "/a/b//c", None),
        ("/a/**", "/b", None),
        ("/a/{rest=**}", "/a", {"rest": ""}),
        ("/a/{rest=**}", "/a/b/c/d", {"rest": "b/c/d"}),
        ("/{rest=**}", "/", {"rest": ""}),
        ("/**", "/", {}),
        # Several segments captured as one value.
        ("/v1/{name=projects/*/boards/*}", "/v1/projects/p1/boards/b2", {"name": "projects/p1/boards/b2"}),
        ("/v1/{name=projects/*/boards/*}", "/v1/projects/p1/columns/b2", None),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/s/books", {"name": "shelves/s/books"}),
        ("/v1/{name=shelves/*/books/**}", "/v1/shelves/s/books/b/c", {"name": "shelves/s/books/b/c"}),
        ("/v1/{a}/x/{b.c}", "/v1/1/x/2", {"a": "1", "b.c": "2"}),
        # Verbs: after the last colon of the last segment, only when the template has one.
        ("/v1/{name=messages/*}:cancel", "/v1/messages/7:cancel", {"name": "messages/7"}),
        ("/v1/{name=messages/*}:cancel", "/v1/messages/7", None),
        ("/v1/{name=messages/*}:cancel", "/v1/messages/7:undo", None),
        ("/v1/{name=messages/*}:cancel", "/v1/messages/:cancel", None),
        ("/v1/{name=messages/*}:cancel", "/v1/messages/a:b:cancel", {"name": "messages/a:b"}),
        ("/v1/{name=messages/*}:cancel", "/v1/messages/7%3Acancel", None),
        ("/v1/{id}", "/v1/a:b", {"id": "a:b"}),
        ("/v1/{id}", "/v1/a:cancel", {"id": "a:cancel"}),
        ("/v1/{x=**}:run", "/v1:run", {"x": ""}),
        ("/v1/{x=**}:run", "/v1/a/b:run", {"x": "a/b"}),
        ("/{x=**}:run", "/:run", {"x": ""}),
        ("/jobs:run", "/jobs:run", {}),
        ("/jobs:run", "/jobs", None),
        # Literals are compared as sent, encoded.
        ("/v1/%7Euser", "/v1/%7Euser", {}),
        ("/v1/%7Euser", "/v1/~user", None),
    ],
)
def test_match(source: str, path: str, expected: dict[str, str] | None) -> None:
    assert PathTemplate.parse(source).match(path) == expected


@pytest.mark.parametrize(
    ("source", "path", "expected"),
    [
        # One segment: everything decoded, "%2F" included.
        ("/files/{name}", "/files/a%2Fb", "a/b"),
        ("/files/{name}", "/files/a%2fb", "a/b"),
        ("/files/{name}", "/files/caf%C3%A9%20au%20lait", "café au lait"),
        ("/files/{name}", "/files/a+b", "a+b"),
        ("/files/{name}", "/files/%25", "%"),
        ("/files/{name}", "/files/%3A", ":"),
        # Several segments: everything but "%2F"/"%2f" decoded; the escaped slashes are kept as sent.
        ("/files/{name=**}", "/files/a%2Fb/c", "a%2Fb/c"),
        ("/files/{name=**}", "/files/a%2fb/c", "a%2fb/c"),
        ("/files/{name=**}", "/files/a%20b/%C3%A9", "a b/é"),
        ("/files/{name=**}", "/files/%252F", "%2F"),
        ("/files/{name=dir/*}", "/files/dir/x%2Fy%21", "dir/x%2Fy!"),
    ],
)
def test_values_are_percent_decoded(source: str, path: str, expected: str) -> None:
    assert PathTemplate.parse(source).match(path) == {"name": expected}


@pytest.mark.parametrize("path", ["/boards/%", "/boards/a%2", "/boards/%zz", "/boards/%FF", "/boards/%C3"])
def test_undecodable_value_names_the_field(path: str) -> None:
    with pytest.raises(InvalidField) as caught:
        PathTemplate.parse("/boards/{board.owner_id}").match(path)

    assert caught.value.field == "board.ownerId"


def test_undecodable_multi_segment_value_names_the_field() -> None:
    with pytest.raises(InvalidField) as caught:
        PathTemplate.parse("/files/{file_name=**}").match("/files/a/%FF%2Fb")

    assert caught.value.field == "fileName"


# --- specificity -----------------------------------------------------------------------------------


def _most_specific_first(*sources: str) -> list[str]:
    return [t.source for t in sorted((PathTemplate.parse(s) for s in sources), key=lambda t: t.specificity)]


def test_specificity_prefers_literals_then_wildcards_then_double_star() -> None:
    assert _most_specific_first("/api/workspaces/{workspace_id}", "/api/workspaces/all") == [
        "/api/workspaces/all",
        "/api/workspaces/{workspace_id}",
    ]
    assert _most_specific_first("/api/profiles/{a}/{b}", "/api/profiles/all/me", "/api/**") == [
        "/api/profiles/all/me",
        "/api/profiles/{a}/{b}",
        "/api/**",
    ]
    assert _most_specific_first("/a/**", "/a", "/**") == ["/a", "/a/**", "/**"]
    assert _most_specific_first("/a/{b=**}", "/a/{b=x/**}", "/a/{b=x/*}") == [
        "/a/{b=x/*}",
        "/a/{b=x/**}",
        "/a/{b=**}",
    ]


def test_specificity_prefers_a_verb() -> None:
    assert _most_specific_first("/v1/{a}/{b}", "/v1/{name}:cancel") == ["/v1/{name}:cancel", "/v1/{a}/{b}"]


# --- router ----------------------------------------------------------------------------------------


def _router(*routes: tuple[str, str]) -> Router[str]:
    router: Router[str] = Router()
    for method, source in routes:
        router.add(method, PathTemplate.parse(source), f"{method} {source}")
    return router


def test_router_prefers_the_most_specific_route() -> None:
    router = _router(
        ("GET", "/api/workspaces/{workspace_id}"),
        ("GET", "/api/workspaces/all"),
        ("GET", "/api/profiles/{a}/{b}"),
        ("GET", "/api/profiles/all/me"),
        ("GET", "/api/**"),
    )

    assert router.find("GET", "/api/workspaces/all") == ("GET /api/workspaces/all", {})
    assert router.find("GET", "/api/workspaces/w1") == (
        "GET /api/workspaces/{workspace_id}",
        {"workspace_id": "w1"},
    )
    assert router.find("GET", "/api/profiles/all/me") == ("GET /api/profiles/all/me", {})
    # The literal branch "all" is a dead end for ".../all/you": the router backtracks to the wildcards.
    assert router.find("GET", "/api/profiles/all/you") == (
        "GET /api/profiles/{a}/{b}",
        {"a": "all", "b": "you"},
    )
    assert router.find("GET", "/api/workspaces/all/x") == ("GET /api/**", {})
    assert router.find("GET", "/api") == ("GET /api/**", {})
    assert router.find("GET", "/other") is None
    assert router.find("GET", "/api/workspaces/") is None


def test_router_verbs() -> None:
    router = _router(
        ("POST", "/v1/{name=messages/*}:cancel"),
        ("POST", "/v1/messages/{id}"),
        ("POST", "/v1/{x=**}:run"),
        ("POST", "/{everything=**}:ping"),
    )

    assert router.find("POST", "/v1/messages/7:cancel") == (
        "POST /v1/{name=messages/*}:cancel",
        {"name": "messages/7"},
    )
    # Not a verb any route has: the colon is part of the segment.
    assert router.find("POST", "/v1/messages/7:undo") == ("POST /v1/messages/{id}", {"id": "7:undo"})
    assert router.find("POST", "/v1/messages/7") == ("POST /v1/messages/{id}", {"id": "7"})
    # The segment before the verb must not be empty; without the verb, ":cancel" is a fine id.
    assert router.find("POST", "/v1/messages/:cancel") == ("POST /v1/messages/{id}", {"id": ":cancel"})
    assert router.find("POST", "/v1:run") == ("POST /v1/{x=**}:run", {"x": ""})
    assert router.find("POST", "/v1/a/b:run") == ("POST /v1/{x=**}:run", {"x": "a/b"})
    assert router.find("POST", "/:ping") == ("POST /{everything=**}:ping", {"everything": ""})
    assert router.find("POST", "/x/:ping") is None
    assert router.find("POST", "/x/y:ping") == ("POST /{everything=**}:ping", {"everything": "x/y"})


def test_router_allowed_methods() -> None:
    router = _router(("GET", "/api/boards/{id}"), ("DELETE", "/api/boards/{id}"), ("POST", "/api/boards"))

    assert router.allowed_methods("/api/boards/1") == {"GET", "DELETE"}
    assert router.allowed_methods("/api/boards") == {"POST"}
    assert router.allowed_methods("/api/nothing") == set()
    assert router.find("PUT", "/api/boards/1") is None


def test_router_refuses_two_routes_for_the_same_paths() -> None:
    router = _router(("GET", "/api/boards/{id}"), ("GET", "/api/boards/{id}:archive"))
    router.add("POST", PathTemplate.parse("/api/boards/{board_id}"), "other method")

    with pytest.raises(RouteConflictError, match=r"/api/boards/\{id\}"):
        router.add("GET", PathTemplate.parse("/api/boards/{board_id}"), "clash")
    with pytest.raises(RouteConflictError):
        router.add("GET", PathTemplate.parse("/api/boards/*:archive"), "clash")


def test_router_decoding_errors_name_the_field() -> None:
    router = _router(("GET", "/api/boards/{board_id}"))

    with pytest.raises(InvalidField) as caught:
        router.find("GET", "/api/boards/%FF")

    assert caught.value.field == "boardId"
    # Choosing a route decodes nothing: the 404/405 path cannot fail on a bad escape.
    assert router.allowed_methods("/api/boards/%FF") == {"GET"}


# --- properties ------------------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_literals = st.text(_UNRESERVED, min_size=1, max_size=6)
_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
# Any text a client may put in a segment, percent-encoded as http.proto says (all but unreserved).
_values = st.text(min_size=1, max_size=8)

# One element of a generated template: a literal, "*", a one-segment variable, or a variable over
# several segments (each a literal, or None for "*").
_elements = st.one_of(
    st.tuples(st.just("lit"), st.tuples(_literals)),
    st.tuples(st.just("star"), st.just(())),
    st.tuples(st.just("var"), st.just(())),
    st.tuples(st.just("multi"), st.lists(st.one_of(_literals, st.none()), min_size=1, max_size=3).map(tuple)),
)


@st.composite
def _template_and_path(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A valid template, a path built from it with generated values, and the values a match gives."""
    elements = draw(st.lists(_elements, min_size=1, max_size=5))
    tail = draw(st.sampled_from(["none", "star", "var"]))
    verb = draw(st.one_of(st.none(), _literals))
    template: list[str] = []
    path: list[str] = []
    expected: dict[str, str] = {}
    for index, (kind, parts) in enumerate(elements):
        name = f"v{index}"
        if kind == "lit":
            template.append(str(parts[0]))
            path.append(str(parts[0]))
        elif kind == "star":
            template.append("*")
            path.append(quote(draw(_values), safe=""))
        elif kind == "var":
            value = draw(_values)
            template.append("{" + name + "}")
            path.append(quote(value, safe=""))
            expected[name] = value
        else:
            inner: list[str] = []
            captured: list[str] = []
            for part in parts:
                if part is None:
                    value = draw(_values)
                    inner.append("*")
                    path.append(quote(value, safe=""))
                    # Several segments keep an encoded slash encoded; "{v=*}" is one segment.
                    captured.append(value if len(parts) == 1 else value.replace("/", "%2F"))
                else:
                    inner.append(part)
                    path.append(part)
                    captured.append(part)
            template.append("{" + name + "=" + "/".join(inner) + "}")
            expected[name] = "/".join(captured)
    if tail != "none":
        rest = draw(st.lists(_values, max_size=3))
        path.extend(quote(value, safe="") for value in rest)
        if tail == "star":
            template.append("**")
        else:
            template.append("{rest=**}")
            expected["rest"] = "/".join(value.replace("/", "%2F") for value in rest)
    source = "/" + "/".join(template) + (f":{verb}" if verb else "")
    url = "/" + "/".join(path) + (f":{verb}" if verb else "")
    return source, url, expected


@given(_template_and_path())
def test_generated_paths_match_and_round_trip(case: tuple[str, str, dict[str, str]]) -> None:
    source, path, expected = case
    template = PathTemplate.parse(source)

    assert template.match(path) == expected
    assert set(template.variables) == set(expected)
    router: Router[str] = Router()
    router.add("GET", template, source)
    assert router.find("GET", path) == (source, expected)


@given(st.text(max_size=40))
def test_parse_of_any_text_returns_or_raises_template_error(text: str) -> None:
    try:
        template = PathTemplate.parse(text)
    except TemplateError:
        return
    assert template.source == text


@given(st.text(alphabet="/{}=*:.ab_%2F", max_size=24))
def test_parse_of_template_like_text_returns_or_raises_template_error(text: str) -> None:
    with contextlib.suppress(TemplateError):
        PathTemplate.parse(text)


@given(st.sampled_from(["/a/{x}", "/a/{x=**}:v", "/{x=a/*}/b", "/**"]), st.text(max_size=30))
def test_match_of_any_path_returns_or_raises_invalid_field(source: str, path: str) -> None:
    try:
        found = PathTemplate.parse(source).match(path)
    except InvalidField as error:
        field = error.field
    else:
        assert found is None or all(isinstance(value, str) for value in found.values())
        return
    assert field == "x"


def _render(segments: list[str], verb: str | None) -> str:
    named = [f"{{v{i}}}" if segment == "var" else segment for i, segment in enumerate(segments)]
    return "/" + "/".join(named) + (f":{verb}" if verb else "")


_small_templates = st.builds(
    _render,
    st.lists(st.sampled_from(["a", "b", "*", "var"]), min_size=1, max_size=3).flatmap(
        lambda segments: st.sampled_from([segments, [*segments, "**"]])
    ),
    st.sampled_from([None, "x"]),
)
_small_paths = st.builds(
    lambda segments, verb: "/" + "/".join(segments) + (f":{verb}" if verb else ""),
    st.lists(st.sampled_from(["a", "b", "c", "a:x"]), max_size=5),
    st.sampled_from([None, "x", "y"]),
)


@given(st.lists(_small_templates, min_size=1, max_size=12), st.lists(_small_paths, min_size=1, max_size=8))
def test_router_finds_the_most_specific_matching_template(sources: list[str], paths: list[str]) -> None:
    router: Router[PathTemplate] = Router()
    templates: list[PathTemplate] = []
    for source in dict.fromkeys(sources):
        template = PathTemplate.parse(source)
        try:
            router.add("GET", template, template)
        except RouteConflictError:
            continue
        templates.append(template)
    assume(templates)
    for path in paths:
        matching = [t for t in templates if t.match(path) is not None]
        found = router.find("GET", path)
        if not matching:
            assert found is None
            assert router.allowed_methods(path) == set()
            continue
        best = min(matching, key=lambda t: t.specificity)
        assert found == (best, best.match(path))
        assert router.allowed_methods(path) == {"GET"}


def test_parts_expose_each_variable_and_its_pattern() -> None:
    """What the OpenAPI document reads: the router's own parse, variable by variable."""
    template = PathTemplate.parse("/v1/{name=projects/*/boards/*}/files/*/{rest=**}:inspect")
    assert template.parts == (
        Literal("v1"),
        Variable("name", "name", "projects/*/boards/*", multi=True),
        Literal("files"),
        Wildcard("*"),
        Variable("rest", "rest", "**", multi=True),
    )
    assert template.verb == "inspect"
    board = PathTemplate.parse("/api/boards/{board_id}")
    assert board.parts[-1] == Variable("board_id", "boardId", "*", multi=False)
    assert PathTemplate.parse("/**").parts == (Wildcard("**"),)
