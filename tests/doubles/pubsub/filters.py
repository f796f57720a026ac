"""The attribute part of Pub/Sub's subscription filter language.

Supported (enough for routing on attributes, which is all cutq needs):

    attributes:KEY                      the attribute is present
    attributes.KEY = "value"            present with exactly this value
    attributes.KEY != "value"           absent, or present with another value
    hasPrefix(attributes.KEY, "pre")    present and starts with "pre"
    NOT expr   -expr   (expr)   a AND b AND c   a OR b OR c

As in Pub/Sub, AND and OR cannot be mixed without parentheses, and a filter is at most
256 bytes. Keys are identifiers or back-quoted (`odd key`). Anything else raises
`FilterError`, which the server reports as INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Predicate = Callable[[Mapping[str, str]], bool]

MAX_FILTER_BYTES = 256

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<quoted>`[^`]+`)
      | (?P<op>!=|[=:(),.\-])
      | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    """The filter is not valid in the supported subset of the Pub/Sub filter language."""


def compile_filter(text: str) -> Predicate:
    """Parse `text` into a predicate over message attributes; "" matches every message."""
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise FilterError(f"filter is longer than {MAX_FILTER_BYTES} bytes")
    if not text.strip():
        return lambda attributes: True
    parser = _Parser(_tokenize(text))
    predicate = parser.expression()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()[1]!r} in filter {text!r}")
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"cannot parse filter {text!r} at offset {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


class _Parser:
    """Recursive descent over the token list; each rule returns a predicate."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens
        self._index = 0

    def peek(self) -> tuple[str, str] | None:
        return self._tokens[self._index] if self._index < len(self._tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            found = "end of filter" if token is None else repr(token[1])
            raise FilterError(f"expected {value or kind}, found {found}")
        self._index += 1
        return token[1]

    def _at(self, kind: str, value: str) -> bool:
        return self.peek() == (kind, value)

    def expression(self) -> Predicate:
        terms = [self._term()]
        joiner: str | None = None
        while self._at("word", "AND") or self._at("word", "OR"):
            word = self._take("word")
            if joiner is not None and word != joiner:
                raise FilterError("AND and OR cannot be mixed without parentheses")
            joiner = word
            terms.append(self._term())
        if len(terms) == 1:
            return terms[0]
        if joiner == "AND":
            return lambda attributes: all(term(attributes) for term in terms)
        return lambda attributes: any(term(attributes) for term in terms)

    def _term(self) -> Predicate:
        if self._at("word", "NOT") or self._at("op", "-"):
            self._index += 1
            inner = self._term()
            return lambda attributes: not inner(attributes)
        if self._at("op", "("):
            self._index += 1
            inner = self.expression()
            self._take("op", ")")
            return inner
        if self._at("word", "hasPrefix"):
            self._index += 1
            self._take("op", "(")
            key = self._attribute_key(".")
            self._take("op", ",")
            prefix = _unquote(self._take("string"))
            self._take("op", ")")
            return lambda attributes: key in attributes and attributes[key].startswith(prefix)
        return self._comparison()

    def _comparison(self) -> Predicate:
        self._take("word", "attributes")
        if self._at("op", ":"):
            self._index += 1
            key = self._key()
            return lambda attributes: key in attributes
        self._take("op", ".")
        key = self._key()
        operator = self._take("op")
        if operator not in ("=", "!="):
            raise FilterError(f"expected = or != after attributes.{key}, found {operator!r}")
        value = _unquote(self._take("string"))
        if operator == "=":
            return lambda attributes: attributes.get(key) == value
        return lambda attributes: attributes.get(key) != value

    def _attribute_key(self, separator: str) -> str:
        self._take("word", "attributes")
        self._take("op", separator)
        return self._key()

    def _key(self) -> str:
        token = self.peek()
        if token is not None and token[0] == "quoted":
            self._index += 1
            return token[1][1:-1]
        return self._take("word")
