"""The JSONPath subset Kubernetes uses on custom resources.

Two consumers, two dialects. Scale subresources read and write ``specReplicasPath`` /
``statusReplicasPath`` / ``labelSelectorPath``, which the CRD validation restricts to simple dot
paths (``.spec.replicas``): ``get_path`` and ``set_path`` handle those, and ``set_path`` returns
a new object because stored objects are shared. ``additionalPrinterColumns`` are evaluated like
client-go's jsonpath with missing keys allowed (a missing field is an empty cell, not an error),
and the table shows only the first result, so ``evaluate_jsonpath`` returns the first match or
None and ``find_all`` returns every match. Supported: ``.field`` (with ``\\.`` escapes),
``['key']``, ``[n]`` (negative counts from the end), ``[a:b]``, ``[*]`` / ``.*``, ``..field``
(recursive descent) and filters ``[?(@.type=="Ready")]`` comparing a relative path with a string,
number, boolean or null literal (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``), or testing that a
relative path exists (``[?(@.ready)]``). A surrounding ``{...}`` and a leading ``$`` are accepted.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any

Step = tuple[Any, ...]
_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """The value at a simple dot path (``.spec.replicas``), None if any part is missing."""
    cur = obj
    for part in _dot_parts(path):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def set_path(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with ``value`` at a simple dot path, creating missing objects."""
    parts = _dot_parts(path)
    if not parts:
        raise ValueError(f"cannot set the root of an object: {path!r}")
    out = copy.deepcopy(obj)
    cur = out
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = cur[part] = {}
        cur = nxt
    cur[parts[-1]] = copy.deepcopy(value)
    return out


def _dot_parts(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    return [p for p in path.lstrip("$").split(".") if p]


def evaluate_jsonpath(obj: Any, path: str) -> Any:
    """The first value ``path`` selects in ``obj`` (as a printer column shows it), else None."""
    found = find_all(obj, path)
    return found[0] if found else None


def find_all(obj: Any, path: str) -> list[Any]:
    """Every value ``path`` selects, in document order. Raises ValueError on bad syntax."""
    nodes = [obj]
    for step in _parse(path):
        nodes = [r for n in nodes for r in _apply(step, n)]
    return nodes


# ---------------------------------------------------------------- parsing


@functools.lru_cache(maxsize=256)
def _parse(path: str) -> tuple[Step, ...]:
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1].strip()
    if p.startswith("$"):
        p = p[1:]
    steps: list[Step] = []
    i = 0
    while i < len(p):
        c = p[i]
        if p.startswith("..", i):
            steps.append(("descend",))
            i += 1  # the second dot starts the next field
        elif c == ".":
            i += 1
            if i < len(p) and p[i] == "*":
                steps.append(("wild",))
                i += 1
                continue
            name, i = _read_name(p, i)
            if name:
                steps.append(("field", name))
        elif c == "[":
            end = _close_bracket(p, i)
            steps.append(_bracket(p[i + 1:end].strip(), path))
            i = end + 1
        elif c.isspace():
            i += 1
        else:
            name, i = _read_name(p, i)
            steps.append(("field", name))
    return tuple(steps)


def _read_name(p: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(p) and p[i] not in ".[":
        if p[i] == "\\" and i + 1 < len(p):
            i += 1
        out.append(p[i])
        i += 1
    return "".join(out).strip(), i


def _close_bracket(p: str, start: int) -> int:
    quote, depth = "", 0
    for i in range(start, len(p)):
        c = p[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
            if depth == 0 and c == "]":
                return i
    raise ValueError(f"unclosed [ in jsonpath {p!r}")


_SLICE = re.compile(r"(-?\d*)\s*:\s*(-?\d*)(?:\s*:\s*(-?\d*))?")
_FILTER = re.compile(r"\?\((.*)\)", re.S)
_COMPARE = re.compile(r"(.+?)\s*(==|!=|<=|>=|<|>)\s*(.+)", re.S)


def _bracket(body: str, path: str) -> Step:
    if body == "*":
        return ("wild",)
    if body[:1] in "'\"":
        keys = [json.loads('"' + k[1:-1].replace('"', '\\"') + '"') if k[:1] == "'" else
                json.loads(k) for k in re.findall(r"'[^']*'|\"[^\"]*\"", body)]
        return ("keys", tuple(keys))
    if re.fullmatch(r"-?\d+", body):
        return ("index", int(body))
    if m := _SLICE.fullmatch(body):
        start, stop, step = (int(g) if g else None for g in m.groups())
        return ("slice", start, stop, step)
    if m := _FILTER.fullmatch(body):
        expr = m.group(1).strip()
        if cmp := _COMPARE.fullmatch(expr):
            left, op, right = cmp.groups()
            return ("filter", _operand(left), op, _operand(right))
        if re.search(r"[=!<>]", expr):
            raise ValueError(f"unsupported jsonpath filter ({expr}) in {path!r}")
        return ("filter", _operand(expr), "exists", None)
    raise ValueError(f"unsupported jsonpath expression [{body}] in {path!r}")


def _operand(text: str) -> tuple[str, Any]:
    text = text.strip()
    if text.startswith("@"):
        return ("path", _parse(text[1:]))
    if text[:1] == "'" and text[-1:] == "'":
        return ("value", text[1:-1])
    try:
        return ("value", json.loads(text))
    except ValueError:
        raise ValueError(f"unsupported jsonpath filter operand {text!r}") from None


# ---------------------------------------------------------------- evaluation


def _apply(step: Step, node: Any) -> list[Any]:
    kind = step[0]
    if kind == "field":
        return [node[step[1]]] if isinstance(node, dict) and step[1] in node else []
    if kind == "keys":
        return [node[k] for k in step[1] if isinstance(node, dict) and k in node]
    if kind == "wild":
        return list(node.values()) if isinstance(node, dict) else (
            list(node) if isinstance(node, list) else [])
    if kind == "descend":
        return _descendants(node)
    if not isinstance(node, list):
        return []
    if kind == "index":
        i = step[1]
        return [node[i]] if -len(node) <= i < len(node) else []
    if kind == "slice":
        return node[slice(step[1], step[2], step[3] or None)]
    return [x for x in node if _matches(x, step[1], step[2], step[3])]


def _descendants(node: Any) -> list[Any]:
    out = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        out += _descendants(child)
    return out


def _resolve(operand: tuple[str, Any], item: Any) -> Any:
    kind, value = operand
    if kind == "value":
        return value
    nodes = [item]
    for step in value:
        nodes = [r for n in nodes for r in _apply(step, n)]
    return nodes[0] if nodes else _MISSING


def _matches(item: Any, left: tuple[str, Any], op: str, right: tuple[str, Any] | None) -> bool:
    a = _resolve(left, item)
    if op == "exists":
        return a is not _MISSING and a is not None and a is not False
    b = _resolve(right, item) if right else _MISSING
    if a is _MISSING or b is _MISSING:
        return False
    if op in ("==", "!="):
        same = type(a) is type(b) or _is_number(a) and _is_number(b)
        return (same and a == b) == (op == "==")
    if not (_is_number(a) and _is_number(b) or isinstance(a, str) and isinstance(b, str)):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
