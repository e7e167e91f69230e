"""Label selectors, parsed and matched the way kube-apiserver does it.

``kubectl get -l``, kr8s's ``label_selector`` and every controller's list or watch rely on the
server to filter, and the clients show the server's parse errors verbatim, so the grammar, the
normalised string form and the error messages follow ``k8s.io/apimachinery``'s ``labels``
package: set-based label requirements (``in``/``notin``/``!key``/``>``/``<``) with label-key and
label-value validation, and the ``LabelSelector`` objects of workload specs. Malformed input is
answered with a 400 ``BadRequest``. Field selectors are ``fieldselectors``'. Everything here is
pure: no I/O, no state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors

# -- label keys and values ------------------------------------------------------------------

_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT64_RE = re.compile(r"[+-]?[0-9]+")

_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
             "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
             "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
              "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
              "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric character "
                  "(e.g. 'example.com', regex used for validation is "
                  r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def qualified_name_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid label key (``[prefix/]name``); empty when it is."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        if len(prefix) > 253:
            return ["prefix part must be no more than 253 characters"]
        if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            return ["prefix part " + _SUBDOMAIN_MSG]
    else:
        return ["a qualified name " + _NAME_MSG +
                " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        return ["name part must be non-empty"]
    out = []
    if len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not _NAME_RE.fullmatch(name):
        out.append("name part " + _NAME_MSG)
    return out


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value; empty when it is."""
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _VALUE_RE.fullmatch(value):
        out.append(_VALUE_MSG)
    return out


def _invalid(path: str, value: Any, detail: str) -> str:
    """A ``field.Invalid`` error string: ``path: Invalid value: "v": detail``."""
    shown = f'"{value}"' if isinstance(value, str) else "[]string{" + ", ".join(
        f'"{v}"' for v in value) + "}"
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


# -- label requirements ---------------------------------------------------------------------

#: Operators as Kubernetes' ``selection`` package spells them.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"

_SELECTOR_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def _parse_int64(s: str) -> int | None:
    if not _INT64_RE.fullmatch(s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One ANDed term: ``key <operator> values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def make(cls, key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
        """Validate like ``labels.NewRequirement``; raises ValueError with Kubernetes' message."""
        vals = list(values)
        problems: list[str] = []
        key_errors = qualified_name_errors(key)
        if key_errors:
            problems.append(_invalid("key", key, "; ".join(key_errors)))
        if operator in (IN, NOT_IN):
            if not vals:
                problems.append(_invalid("values", vals,
                                         "for 'in', 'notin' operators, values set can't be empty"))
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                problems.append(_invalid("values", vals,
                                         "exact-match compatibility requires one single value"))
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if vals:
                problems.append(_invalid(
                    "values", vals, "values set must be empty for exists and does not exist"))
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                problems.append(_invalid(
                    "values", vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
            for i, v in enumerate(vals):
                if _parse_int64(v) is None:
                    problems.append(_invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, "
                                                            "the value must be an integer"))
        else:
            problems.append(f'operator: Unsupported value: "{operator}"')
        for i, v in enumerate(vals):
            value_errors = label_value_errors(v)
            if value_errors:
                problems.append(_invalid(f"values[{i}][{key}]", v, "; ".join(value_errors)))
        if problems:
            raise ValueError(_aggregate(problems))
        return cls(key, operator, tuple(vals))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(str(labels[self.key])), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{values}"


@dataclass(frozen=True)
class LabelSelector:
    """ANDed requirements, kept sorted by key as Kubernetes does. No requirements matches
    everything, unless ``nothing`` (a null ``metav1.LabelSelector``), which matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector matches every object."""
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _selector(requirements: Iterable[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# -- the label selector grammar -------------------------------------------------------------

_SPECIAL = set("=!(),<>")
_WHITESPACE = set(" \t\r\n")
_SYMBOLS = {"!": "NOT", "!=": "NEQ", "(": "OPEN", ")": "CLOSE", ",": "COMMA", "=": "EQ",
            "==": "DEQ", ">": "GT", "<": "LT"}
_KEYWORDS = {"in": "IN", "notin": "NOTIN"}
_OPERATOR_TOKENS = {"IN": IN, "NOTIN": NOT_IN, "EQ": EQUALS, "DEQ": DOUBLE_EQUALS,
                    "NEQ": NOT_EQUALS, "GT": GREATER_THAN, "LT": LESS_THAN}
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _lex(s: str) -> list[tuple[str, str]]:
    """Tokens of a label selector: special symbols (longest match), keywords, identifiers."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(("END", ""))
            return tokens
        if s[i] in _SPECIAL:
            run, best, j = "", None, i
            while j < n and s[j] in _SPECIAL:
                run += s[j]
                if run in _SYMBOLS:
                    best = (_SYMBOLS[run], run)
                elif best is not None:
                    break
                j += 1
            if best is None:
                tokens.append(("ERROR", f"error expected: keyword found '{run}'"))
                i = j
            else:
                tokens.append(best)
                i += len(best[1])
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in _WHITESPACE:
            j += 1
        word = s[i:j]
        tokens.append((_KEYWORDS.get(word, "IDENT"), word))
        i = j


class _Parser:
    """Recursive descent over the token list. In a value position ``in``/``notin`` are plain
    identifiers; only where an operator is expected are they keywords."""

    def __init__(self, s: str) -> None:
        self.tokens = _lex(s)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        tok, lit = self.tokens[self.pos]
        if values and tok in ("IN", "NOTIN"):
            tok = "IDENT"
        return tok, lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.peek(values)
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        out: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == "END":
                return out
            if tok not in ("IDENT", "NOT"):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                out.append(self.requirement())
            except ValueError as exc:
                raise ValueError(f"unable to parse requirement: {exc}") from None
            tok, lit = self.take()
            if tok == "END":
                return out
            if tok != "COMMA":
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in ("IDENT", "NOT"):
                raise ValueError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        tok, lit = self.take()
        if tok == "NOT":
            negated = True
            tok, lit = self.take()
        if tok != "IDENT":
            raise ValueError(f"found '{lit}', expected: identifier")
        key = lit
        key_errors = qualified_name_errors(key)
        if key_errors:
            raise ValueError(_invalid("<nil>", key, "; ".join(key_errors)))
        if negated:  # "!key" is complete; whatever follows is the caller's problem
            return Requirement.make(key, DOES_NOT_EXIST)
        if self.peek()[0] in ("END", "COMMA"):
            return Requirement.make(key, EXISTS)
        tok, lit = self.take(values=False)
        if tok not in _OPERATOR_TOKENS:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        op = _OPERATOR_TOKENS[tok]
        values = self.set_values() if op in (IN, NOT_IN) else self.exact_value()
        return Requirement.make(key, op, sorted(values))

    def set_values(self) -> set[str]:
        tok, lit = self.take()
        if tok != "OPEN":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == "CLOSE":  # "()" is one empty value
            self.take()
            return {""}
        if tok not in ("IDENT", "COMMA"):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == "IDENT":
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == "CLOSE":
                    break
                if nxt != "COMMA":
                    raise ValueError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == "COMMA":  # empty items: "(,a", "a,,b", "a,)"
                if not values:
                    values.add("")
                nxt, _ = self.peek()
                if nxt == "CLOSE":
                    values.add("")
                    break
                if nxt == "COMMA":
                    self.take()
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")
        tok, lit = self.take()
        if tok != "CLOSE":
            raise ValueError(f"found '{lit}', expected: ')'")
        return values

    def exact_value(self) -> set[str]:
        tok, _ = self.peek()
        if tok in ("END", "COMMA"):
            return {""}
        tok, lit = self.take()
        if tok == "IDENT":
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query value; malformed input is a 400 like kube-apiserver's."""
    if not s or not s.strip():
        return LabelSelector()
    try:
        return _selector(_Parser(s).parse())
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``) as a selector.

    ``None`` matches nothing and ``{}`` everything, as ``LabelSelectorAsSelector`` has it.
    An unknown operator or invalid key/value raises a 400 with Kubernetes' message.
    """
    if sel is None:
        return LabelSelector(nothing=True)
    reqs: list[Requirement] = []
    try:
        for key, value in (sel.get("matchLabels") or {}).items():
            reqs.append(Requirement.make(key, EQUALS, [str(value)]))
        for expr in sel.get("matchExpressions") or ():
            op = _SELECTOR_OPS.get(expr.get("operator"))
            if op is None:
                raise ValueError(f'"{expr.get("operator")}" is not a valid label selector operator')
            reqs.append(Requirement.make(expr.get("key") or "", op, expr.get("values") or ()))
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None
    return _selector(reqs)


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Equality on every pair, like ``labels.SelectorFromSet`` (a Service's ``spec.selector``)."""
    return _selector(Requirement(k, EQUALS, (str(v),)) for k, v in (labels or {}).items())


def selector_to_string(sel: Mapping[str, Any] | None) -> str:
    """The string form of a ``metav1.LabelSelector`` (the scale subresource's status.selector)."""
    return str(label_selector_from_dict(sel))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``k=v`` pairs sorted by key, ``<none>`` when empty (``labels.FormatLabels``)."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
