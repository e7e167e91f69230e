"""CEL validation rules of CRDs (``x-kubernetes-validations``), compiled and evaluated as the
apiextensions-apiserver does.

The server reports Kubernetes 1.32, where a CRD's rules are enforced on every create and update
of its objects; storing them without evaluating them would accept objects a real cluster
refuses (a DaskAutoscaler with ``minimum > maximum``). Expressions are compiled and run by the
``common-expression-language`` package (a maintained CEL implementation on PyPI); this module
adds what the Kubernetes CEL environment has on top of standard CEL and the project's CRDs or
common CRDs use (the string and list extension functions below), the variables ``self`` and
``oldSelf``, and Kubernetes' way of reporting:

* each rule is evaluated with ``self`` bound to the value at the schema node that declares it;
  a rule that mentions ``oldSelf`` is a *transition rule*, evaluated only on update and only
  where the old object has a value at the same place (properties and map keys correlate;
  ``x-kubernetes-list-type: map`` items correlate by their keys; other list items do not);
* a failing rule becomes ``<path>: Invalid value: "<schema type>": <message>`` (``<nil>`` for
  the root), where the message is ``messageExpression``'s result, else ``message``, else
  ``failed rule: <rule>``; ``reason`` picks Forbidden, Required or Duplicate instead of Invalid
  and ``fieldPath`` names a field below the node;
* an error while evaluating (a missing field, a function that does not exist) is reported for
  the node, never treated as a pass;
* a rule or messageExpression that does not parse refuses the CRD, with the ValidationRule
  printed as Go prints it and ``compilation failed: <CEL's error>``. The library parses but does
  not type-check, so an unknown field or function is found at evaluation, not at CRD creation.

Rules are not evaluated when the object already has type errors: kube-apiserver then adds one
error saying some rules were not checked. Cost budgets are not modelled.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import cel

from .errors import Cause
from .fielderrors import duplicate, forbidden, invalid, not_supported, required

Schema = dict[str, Any]

_OLD_SELF = re.compile(r"\boldSelf\b")
_PARSE_PREFIX = re.compile(r"^Failed to parse expression '.*?': ", re.S)
REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
           "FieldValueDuplicate")
NOT_CHECKED = ("some validation rules were not checked because the object was invalid; "
               "correct the existing errors to complete validation")


def _split(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    return s.split(sep, n - 1) if n > 0 else s.split(sep)


def _substring(s: str, start: int, end: int | None = None) -> str:
    return s[start:] if end is None else s[start:end]


def _index_of(container: Any, item: Any, start: int = 0) -> int:
    if isinstance(container, str):
        return container.find(item, start)
    return container.index(item) if item in container else -1


def _last_index_of(container: Any, item: Any) -> int:
    if isinstance(container, str):
        return container.rfind(item)
    return len(container) - 1 - container[::-1].index(item) if item in container else -1


#: Kubernetes' CEL extensions (cel-go's ext.Strings and k8s' lists library) by name.
EXTENSIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": lambda s: "".join(c.lower() if c.isascii() else c for c in s),
    "upperAscii": lambda s: "".join(c.upper() if c.isascii() else c for c in s),
    "trim": lambda s: s.strip(),
    "split": _split,
    "replace": lambda s, old, new, n=-1: s.replace(old, new, n),
    "substring": _substring,
    "charAt": lambda s, i: s[i] if i < len(s) else "",
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "join": lambda items, sep="": sep.join(items),
    "isSorted": lambda items: list(items) == sorted(items),
    "sum": lambda items: sum(items),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
}


class RuleCompileError(ValueError):
    """A rule or messageExpression that CEL cannot parse; the text is CEL's own error."""


@functools.lru_cache(maxsize=1024)
def compile_expression(expression: str) -> Any:
    try:
        return cel.compile(expression)
    except ValueError as exc:
        raise RuleCompileError(_PARSE_PREFIX.sub("", str(exc))) from None


def _go_rule(rule: dict[str, Any]) -> str:
    """The ValidationRule as Go's ``%#v`` prints it in a field error."""
    def q(key: str) -> str:
        return json.dumps(str(rule.get(key) or ""), ensure_ascii=False)
    reason = "(*apiextensions.FieldValueErrorReason)(nil)" if not rule.get("reason") else \
        f"(*apiextensions.FieldValueErrorReason)({json.dumps(rule['reason'])})"
    optional = "(*bool)(nil)" if rule.get("optionalOldSelf") is None else \
        f"(*bool)({str(bool(rule['optionalOldSelf'])).lower()})"
    return (f"apiextensions.ValidationRule{{Rule:{q('rule')}, Message:{q('message')}, "
            f"MessageExpression:{q('messageExpression')}, Reason:{reason}, "
            f"FieldPath:{q('fieldPath')}, OptionalOldSelf:{optional}}}")


def compile_errors(rules: list[dict[str, Any]], path: str) -> list[Cause]:
    """What refuses a CRD among one schema node's rules: those that do not compile."""
    errs: list[Cause] = []
    for i, rule in enumerate(rules):
        here = f"{path}.x-kubernetes-validations[{i}]"
        reason = rule.get("reason")
        if reason is not None and reason not in REASONS:
            errs.append(not_supported(f"{here}.reason", reason, sorted(REASONS)))
        for key, prefix in (("rule", "compilation failed"),
                            ("messageExpression", "messageExpression compilation failed")):
            text = str(rule.get(key) or "")
            if not text.strip():
                continue
            try:
                compile_expression(text)
            except RuleCompileError as exc:
                errs.append(Cause(f"{here}.{key}",
                                  f"Invalid value: {_go_rule(rule)}: {prefix}: {exc}"))
    return errs


def _to_cel(value: Any, s: Schema | None) -> Any:
    """JSON as CEL sees it under a schema: ``number`` fields are doubles even when whole."""
    if isinstance(value, dict):
        props, addl = (s or {}).get("properties") or {}, (s or {}).get("additionalProperties")
        return {k: _to_cel(v, props.get(k) or (addl if isinstance(addl, dict) else None))
                for k, v in value.items()}
    if isinstance(value, list):
        items = (s or {}).get("items")
        return [_to_cel(v, items if isinstance(items, dict) else None) for v in value]
    if (s or {}).get("type") == "number" and isinstance(value, int) \
            and not isinstance(value, bool):
        return float(value)
    return value


def _run(expression: str, variables: dict[str, Any]) -> Any:
    context = cel.Context(variables, EXTENSIONS)
    try:
        return compile_expression(expression).execute(context)
    except RuleCompileError:
        raise
    except KeyError as exc:
        raise RuntimeError(f"no such key: {exc.args[0]}") from None
    except Exception as exc:  # CEL reports every evaluation failure as some exception
        raise RuntimeError(str(exc)) from None


def _join_field_path(path: str, field_path: str) -> str:
    rel = re.sub(r"\['([^']*)'\]", r".\1", field_path.strip()).lstrip(".")
    if not rel:
        return path
    return f"{path}.{rel}" if path != "<nil>" else rel


def _message(rule: dict[str, Any], variables: dict[str, Any]) -> str:
    expression = str(rule.get("messageExpression") or "")
    if expression.strip():
        try:
            text = _run(expression, variables)
        except (RuntimeError, RuleCompileError):
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return text.strip()
    if rule.get("message"):
        return str(rule["message"]).strip()
    return f"failed rule: {str(rule.get('rule') or '').strip()}"


def _failure(rule: dict[str, Any], path: str, type_name: str, message: str) -> Cause:
    field = _join_field_path(path, str(rule.get("fieldPath") or ""))
    reason = rule.get("reason")
    if reason == "FieldValueForbidden":
        return forbidden(field, message)
    if reason == "FieldValueRequired":
        return required(field, message)
    if reason == "FieldValueDuplicate":
        return duplicate(field, type_name)
    return invalid(field, type_name, message)


def _check_node(value: Any, old: Any, has_old: bool, s: Schema, path: str,
                out: list[Cause]) -> None:
    type_name = s.get("type") or ("object" if isinstance(value, dict) else "")
    for rule in s.get("x-kubernetes-validations") or []:
        text = str(rule.get("rule") or "")
        transition = bool(_OLD_SELF.search(text))
        if transition and not has_old:
            continue
        variables = {"self": _to_cel(value, s)}
        if transition:
            variables["oldSelf"] = _to_cel(old, s)
        try:
            result = _run(text, variables)
        except (RuntimeError, RuleCompileError) as exc:
            out.append(invalid(path, type_name, str(exc)))
            continue
        if result is not True:
            out.append(_failure(rule, path, type_name, _message(rule, variables)))


def _walk(value: Any, old: Any, has_old: bool, s: Schema | None, path: str,
          out: list[Cause]) -> None:
    if not s or value is None:
        return
    _check_node(value, old, has_old, s, path, out)
    here = "" if path == "<nil>" else path
    if isinstance(value, dict):
        props, addl = s.get("properties") or {}, s.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else {}
        for k, v in value.items():
            sub = props.get(k) or (addl if isinstance(addl, dict) else None)
            child = (f"{here}.{k}" if here else k) if k in props else f"{here}[{k}]"
            _walk(v, old_map.get(k), k in old_map, sub, child, out)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        keys = s.get("x-kubernetes-list-map-keys") or []
        olds: dict[str, Any] = {}
        if has_old and isinstance(old, list) and s.get("x-kubernetes-list-type") == "map":
            olds = {json.dumps([o.get(k) for k in keys]): o for o in old if isinstance(o, dict)}
        for i, v in enumerate(value):
            ident = json.dumps([v.get(k) for k in keys]) if isinstance(v, dict) and keys else None
            _walk(v, olds.get(ident or ""), ident in olds, s["items"], f"{here}[{i}]", out)


def validate(obj: Any, old: Any, schema: Schema | None) -> list[Cause]:
    """Every failing rule of ``obj`` (with ``old``, the stored object, on update)."""
    out: list[Cause] = []
    _walk(obj, old, old is not None, schema, "<nil>", out)
    return out


def not_checked() -> Cause:
    """The error kube-apiserver adds when type errors keep it from evaluating the rules."""
    return invalid("<nil>", "null", NOT_CHECKED)
