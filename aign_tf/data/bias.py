"""The ``--bias`` flag: which faces form the discriminator's prior collection, chosen by attributes.

An expression is a shortcut (``male``, ``female``, ``young``, ``old``, ``big_lips``, ``big_nose``,
``smiling``, ``eyeglasses``, ``none``) or a boolean expression over attribute names, e.g.
``"Male and not Young"`` or ``"(Smiling or Big_Lips) and not Eyeglasses"``. Names and keywords are
case-insensitive, shortcuts may appear inside expressions (``"female and smiling"``), and ``all`` selects
every image. Precedence: ``not`` > ``and`` > ``or``; parentheses group.

Grammar (recursive descent, no ``eval``)::

    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | atom
    atom     := NAME | "all" | "(" or_expr ")"

Labels are uint8 / bool arrays ``[N, A]`` with values in {0, 1}, columns in ``attribute_names`` order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

SHORTCUTS: dict[str, str] = {
    "male": "Male",
    "female": "not Male",
    "young": "Young",
    "old": "not Young",
    "big_lips": "Big_Lips",
    "big_nose": "Big_Nose",
    "smiling": "Smiling",
    "eyeglasses": "Eyeglasses",
    "none": "all",
}

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<name>[A-Za-z0-9_]+)|(?P<bad>\S))")

# AST nodes are tuples: ("all",), ("attr", column, name), ("not", node), ("and", a, b), ("or", a, b).
Node = tuple


def _tokenize(expression: str) -> list[tuple[str, int]]:
    """-> [(token, 0-based character position)]; an unexpected character -> ValueError with its position."""
    tokens = []
    for match in _TOKEN.finditer(expression):
        if match.group("bad"):
            pos = match.start("bad")
            raise ValueError(f"syntax error in bias expression {expression!r} at position {pos}: unexpected "
                             f"character {match.group('bad')!r}; expected attribute names, and/or/not, "
                             "parentheses")
        kind = "paren" if match.group("paren") else "name"
        tokens.append((match.group(kind), match.start(kind)))
    return tokens


class _Parser:
    """Recursive-descent parser over one expression; resolves names against ``attribute_names``."""

    def __init__(self, expression: str, attribute_names: Sequence[str], via_shortcut: str | None = None,
                 user_expression: str | None = None):
        self.expression = expression
        self.user_expression = expression if user_expression is None else user_expression  # for messages
        self.names = tuple(attribute_names)
        self.by_lower = {n.lower(): i for i, n in enumerate(self.names)}
        self.via_shortcut = via_shortcut
        self.tokens = _tokenize(expression)
        self.i = 0

    def parse(self) -> Node:
        if not self.tokens:
            raise ValueError(f"empty bias expression {self.expression!r}; expected a shortcut "
                             f"({', '.join(SHORTCUTS)}) or an expression over attribute names")
        node = self._or()
        if self.i < len(self.tokens):
            token, pos = self.tokens[self.i]
            raise self._syntax_error(f"unexpected {token!r}", pos)
        return node

    def _syntax_error(self, what: str, pos: int | None = None) -> ValueError:
        end = f"position {len(self.expression)} (end of expression)"
        where = f"position {pos}" if pos is not None else end
        return ValueError(f"syntax error in bias expression {self.expression!r} at {where}: {what}")

    def _peek(self) -> str | None:
        return self.tokens[self.i][0].lower() if self.i < len(self.tokens) else None

    def _or(self) -> Node:
        node = self._and()
        while self._peek() == "or":
            self.i += 1
            node = ("or", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._peek() == "and":
            self.i += 1
            node = ("and", node, self._not())
        return node

    def _not(self) -> Node:
        if self._peek() == "not":
            self.i += 1
            return ("not", self._not())
        return self._atom()

    def _atom(self) -> Node:
        if self.i >= len(self.tokens):
            raise self._syntax_error("expected an attribute name, 'not' or '('")
        token, pos = self.tokens[self.i]
        self.i += 1
        if token == "(":
            node = self._or()
            if self._peek() != ")":
                pos_close = self.tokens[self.i][1] if self.i < len(self.tokens) else None
                raise self._syntax_error(f"expected ')' to close the '(' at position {pos}", pos_close)
            self.i += 1
            return node
        lower = token.lower()
        if token == ")" or lower in ("and", "or", "not"):
            raise self._syntax_error(f"expected an attribute name, 'not' or '(' but found {token!r}", pos)
        if lower == "all":
            return ("all",)
        if lower in self.by_lower:
            column = self.by_lower[lower]
            return ("attr", column, self.names[column])
        if lower in SHORTCUTS and self.via_shortcut is None:
            return _Parser(SHORTCUTS[lower], self.names, via_shortcut=lower,
                           user_expression=self.expression).parse()
        raise self._unknown(token)

    def _unknown(self, token: str) -> ValueError:
        origin = f" (from shortcut {self.via_shortcut!r})" if self.via_shortcut else ""
        return ValueError(f"unknown attribute {token!r}{origin} in bias expression {self.user_expression!r}; "
                          f"valid attribute names: {', '.join(self.names)}; "
                          f"shortcuts: {', '.join(SHORTCUTS)}")


def _parse(expression: str, attribute_names: Sequence[str]) -> Node:
    if not isinstance(expression, str):
        raise ValueError(f"bias expression must be a string, got {expression!r}")
    return _Parser(expression, attribute_names).parse()


def _evaluate(node: Node, labels: np.ndarray) -> np.ndarray:
    """labels bool [N, A] -> bool [N]."""
    kind = node[0]
    if kind == "all":
        return np.ones(labels.shape[0], bool)
    if kind == "attr":
        return labels[:, node[1]]
    if kind == "not":
        return ~_evaluate(node[1], labels)
    left, right = _evaluate(node[1], labels), _evaluate(node[2], labels)
    return left & right if kind == "and" else left | right


def _literals(node: Node, positive: bool = True):
    """Yields (attribute name, column, positive?) left to right, pushing ``not`` down (De Morgan)."""
    kind = node[0]
    if kind == "attr":
        yield node[2], node[1], positive
    elif kind == "not":
        yield from _literals(node[1], not positive)
    elif kind in ("and", "or"):
        yield from _literals(node[1], positive)
        yield from _literals(node[2], positive)


def _as_bool_labels(labels: np.ndarray, attribute_names: Sequence[str]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(attribute_names):
        raise ValueError(f"labels must have shape [N, {len(attribute_names)}] (one column per attribute "
                         f"name), got {labels.shape}")
    if labels.dtype != bool and labels.size and (labels.min() < 0 or labels.max() > 1):
        raise ValueError(f"labels must be 0/1 (map CelebA's -1 to 0), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels.astype(bool)


def parse_bias(expression: str, attribute_names: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Returns f(labels uint8/bool [N, A]) -> bool [N]. Unknown name -> ValueError naming the bad name and
    listing the valid attribute names and shortcuts; syntax error -> ValueError with the position."""
    names = tuple(attribute_names)
    node = _parse(expression, names)

    def select(labels: np.ndarray) -> np.ndarray:
        return _evaluate(node, _as_bool_labels(labels, names))

    return select


def select_prior(labels: np.ndarray, expression: str, attribute_names: Sequence[str]) -> np.ndarray:
    """int64 indices [M] of the rows of labels [N, A] the expression selects, ascending. Zero rows ->
    ValueError saying the expression selected 0 of N images, with the positive count of each attribute it
    uses."""
    names = tuple(attribute_names)
    node = _parse(expression, names)
    bool_labels = _as_bool_labels(labels, names)
    chosen = np.flatnonzero(_evaluate(node, bool_labels)).astype(np.int64)
    if chosen.size == 0:
        columns = dict.fromkeys((name, column) for name, column, _ in _literals(node))
        counts = ", ".join(f"{name}={int(bool_labels[:, c].sum())}" for name, c in columns)
        raise ValueError(f"bias expression {expression!r} selected 0 of {len(bool_labels)} images "
                         f"(positives per attribute: {counts or 'no attributes used'}); choose a broader "
                         "--bias or more data")
    return chosen


def bias_slug(expression: str) -> str:
    """Filesystem-safe short name: 'male' -> 'male', 'Male and not Young' -> 'male_and_not_young'.
    Expressions whose words alone would be ambiguous (parentheses) or long get a short hash suffix so two
    different expressions never share a run directory."""
    words = re.findall(r"[A-Za-z0-9_]+|[()]", expression.lower())
    slug = "_".join(w for w in words if w not in ("(", ")"))
    if not slug or "(" in words or ")" in words or len(slug) > 60:
        digest = hashlib.sha1(" ".join(words).encode()).hexdigest()[:6]
        slug = f"{slug[:60].rstrip('_')}_{digest}" if slug else f"bias_{digest}"
    return slug


def bias_attribute(expression: str, attribute_names: Sequence[str]) -> tuple[str, bool] | None:
    """The (attribute, positive?) pair a simple bias targets, for measuring bias strength: 'male' ->
    ('Male', True), 'old' -> ('Young', False), 'Male and not Young' -> ('Male', True) (the first literal);
    'none' / 'all' -> None. Names come back spelled as in attribute_names."""
    for name, _, positive in _literals(_parse(expression, attribute_names)):
        return name, positive
    return None


def names_every_face(expression: str) -> bool:
    """Whether ``expression`` is the unbiased prior by name ('all', or a shortcut for it such as 'none'),
    without the labels: an expression that happens to select every face is only found on them."""
    word = expression.strip().lower()
    return word == "all" or SHORTCUTS.get(word) == "all"
