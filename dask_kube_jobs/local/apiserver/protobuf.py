"""Decoding of Kubernetes protobuf request bodies into the JSON dicts the server works with.

Why: kubectl's typed clients (``kubectl create configmap|secret|deployment|...``, ``kubectl auth
can-i``, ``kubectl create token``...) send built-in kinds as ``application/vnd.kubernetes.protobuf``
and never fall back to JSON. The server stores plain JSON dicts, so we turn the protobuf into
exactly the dict the JSON encoding of the same Go object would give; everything after
``_read_body`` (defaulting, validation, managed fields) is then shared with JSON requests.
kubectl accepts a JSON answer to such a request (it sends ``Accept: ...protobuf,application/json``
and decodes by the response Content-Type), so only decoding is needed.

The envelope is the 4-byte magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message:
``typeMeta`` (1: ``{apiVersion: 1, kind: 2}``), ``raw`` (2: the typed object),
``contentEncoding`` (3) and ``contentType`` (4). Field numbers of the typed messages live in
``protobuf_schema``. A field number the table does not know is an error naming the message and
the number: dropping data silently would store something other than what the client sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from . import errors
from .protobuf_schema import LIST_WRAPPERS, SCHEMA

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# Wire types.
VARINT, I64, LEN, I32 = 0, 1, 2, 5

_SCALARS = {"string", "bool", "int32", "int64", "bytes"}
#: Types that are messages on the wire but a single JSON value (apimachinery's custom marshalers).
_SPECIAL = {"meta.v1.Time", "meta.v1.MicroTime", "api.resource.Quantity",
            "util.intstr.IntOrString", "meta.v1.FieldsV1"}
#: Kinds whose message lives outside the package their apiVersion names.
_META_KINDS = {"DeleteOptions"}


class ProtobufError(errors.APIError):
    """A protobuf body the server cannot turn into JSON (400 malformed, 415 not understood)."""


def _malformed(what: str) -> ProtobufError:
    return ProtobufError(400, "BadRequest", f"error decoding the protobuf request body: {what}")


def _unsupported(what: str) -> ProtobufError:
    return ProtobufError(
        415, "UnsupportedMediaType",
        f"the protobuf request body cannot be decoded by this server: {what}; "
        "send the object as JSON instead (e.g. `kubectl create -f` or `kubectl apply -f`)")


# --- wire format -------------------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _malformed("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(number, wire type, value)``: an int for varints, bytes for everything else."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _malformed("field number 0")
        value: Any
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _malformed(f"field {number} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if pos + size > end:
                raise _malformed(f"field {number} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        else:  # 3/4 are the long-deprecated groups, 6/7 do not exist
            raise _malformed(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value


def _signed(value: int, bits: int) -> int:
    """Negative int32/int64 arrive as 64-bit two's complement varints."""
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < (1 << 31):
        raise _malformed(f"value {value} does not fit an int32")
    return value


# --- values ------------------------------------------------------------------------------------

def _scalar(kind: str, wire: int, value: Any, where: str) -> Any:
    if kind in ("string", "bytes"):
        if wire != LEN:
            raise _malformed(f"{where}: expected a length-delimited {kind}, got wire type {wire}")
        if kind == "bytes":
            return base64.b64encode(value).decode("ascii")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _malformed(f"{where}: string is not valid UTF-8") from exc
    if wire != VARINT:
        raise _malformed(f"{where}: expected a varint {kind}, got wire type {wire}")
    if kind == "bool":
        return value != 0
    return _signed(value, 32 if kind == "int32" else 64)


def _packed(kind: str, buf: bytes, where: str) -> list[Any]:
    """Repeated numbers may also come packed into one length-delimited field."""
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(_scalar(kind, VARINT, value, where))
    return out


def _time(buf: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for number, wire, value in fields(buf):
        if wire != VARINT or number not in (1, 2):
            raise _unsupported(f"field {number} of meta.v1.Time is unknown")
        if number == 1:
            seconds = _signed(value, 64)
        else:
            nanos = _signed(value, 32)
    if not seconds and not nanos:
        return None  # a zero Time marshals as an empty message; JSON has it as null
    try:
        when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise _malformed(f"timestamp {seconds} is out of range") from exc
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def _special(kind: str, buf: bytes) -> Any:
    if kind in ("meta.v1.Time", "meta.v1.MicroTime"):
        return _time(buf, micro=kind == "meta.v1.MicroTime")
    parts: dict[int, Any] = {}
    for number, wire, value in fields(buf):
        parts[number] = (wire, value)
    known = {"api.resource.Quantity": {1}, "meta.v1.FieldsV1": {1},
             "util.intstr.IntOrString": {1, 2, 3}}[kind]
    if set(parts) - known:
        raise _unsupported(f"field {min(set(parts) - known)} of {kind} is unknown")

    def get(number: int, scalar: str, default: Any) -> Any:
        if number not in parts:
            return default
        return _scalar(scalar, *parts[number], f"{kind} field {number}")

    if kind == "api.resource.Quantity":
        return get(1, "string", "0")
    if kind == "meta.v1.FieldsV1":
        raw = parts.get(1, (LEN, b"{}"))[1]
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _malformed("managedFields fieldsV1 is not JSON") from exc
    # IntOrString: type 0 is an int (intVal), 1 a string (strVal).
    return get(3, "string", "") if get(1, "int64", 0) == 1 else get(2, "int32", 0)


def _resolve(kind: str, package: str) -> str:
    """``Container`` inside ``core.v1.PodSpec`` means ``core.v1.Container``."""
    if kind in _SCALARS or kind in SCHEMA or kind in _SPECIAL:
        return kind
    return f"{package}.{kind}"


def _value(kind: str, package: str, wire: int, value: Any, where: str) -> Any:
    kind = _resolve(kind, package)
    if kind in _SCALARS:
        return _scalar(kind, wire, value, where)
    if wire != LEN:
        raise _malformed(f"{where}: expected an embedded {kind} message, got wire type {wire}")
    if kind in _SPECIAL:
        return _special(kind, value)
    return message(kind, value)


def _map_entry(spec: str, package: str, buf: bytes, where: str) -> tuple[str, Any]:
    value_kind = _resolve(spec[len("map<string,"):-1], package)
    key, value = "", None
    for number, wire, raw in fields(buf):
        if number == 1:
            key = _scalar("string", wire, raw, f"{where} key")
        elif number == 2:
            value = _value(value_kind, package, wire, raw, f"{where}[{key!r}]")
        else:
            raise _unsupported(f"field {number} of a {where} map entry is unknown")
    if value is None:  # the entry's value was the zero value and so was left out
        value = {"string": "", "bytes": ""}.get(value_kind)
        if value is None:
            value = _value(value_kind, package, LEN, b"", where)
    return key, value


def message(kind: str, buf: bytes) -> dict[str, Any] | list[Any]:
    """Decode one message of ``kind`` (a ``protobuf_schema.SCHEMA`` key) to its JSON form."""
    schema = SCHEMA.get(kind)
    if schema is None:
        raise _unsupported(f"message {kind} is unknown")
    package = kind.rsplit(".", 1)[0]
    out: dict[str, Any] = {}
    for number, wire, value in fields(buf):
        field = schema.get(number)
        if field is None:
            raise _unsupported(f"field {number} of {kind} is unknown")
        name, spec = field
        where = f"{kind}.{name or number}"
        if spec.startswith("map<"):
            if wire != LEN:
                raise _malformed(f"{where}: map entry with wire type {wire}")
            key, item = _map_entry(spec, package, value, where)
            out.setdefault(name, {})[key] = item
        elif spec.startswith("[]"):
            element = spec[2:]
            items = out.setdefault(name, [])
            if wire == LEN and element in ("bool", "int32", "int64"):
                items.extend(_packed(element, value, where))
            else:
                items.append(_value(element, package, wire, value, where))
        elif not name:  # a Go struct inlined into its parent in JSON
            inner = _value(spec, package, wire, value, where)
            assert isinstance(inner, dict)
            out.update(inner)
        else:
            pointer = spec.startswith("*")
            decoded = _value(spec.lstrip("*"), package, wire, value, where)
            # Non-pointer scalars are always on the wire; JSON (omitempty) leaves out zeros.
            if decoded is None or (not pointer and decoded in ("", 0, False)
                                   and spec in _SCALARS):
                out.pop(name, None)
                continue
            out[name] = decoded
    if kind in LIST_WRAPPERS:
        return list(out.get("items", []))
    return out


# --- envelope ----------------------------------------------------------------------------------

def message_for(api_version: str, kind: str) -> str:
    """The schema key of a kind: ``apps/v1`` ``Deployment`` is ``apps.v1.Deployment``."""
    if kind in _META_KINDS:
        return f"meta.v1.{kind}"
    group, _, version = api_version.rpartition("/")
    package = group.split(".")[0] if group else "core"
    return f"{package}.{version}.{kind}"


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """Split an envelope into ``(apiVersion, kind, raw message)``."""
    if not body.startswith(MAGIC):
        raise _malformed("the body does not start with the Kubernetes protobuf magic 'k8s\\0'")
    api_version = kind = encoding = ""
    raw = b""
    for number, wire, value in fields(body[len(MAGIC):]):
        if number == 1 and wire == LEN:
            for inner, inner_wire, text in fields(value):
                if inner in (1, 2):
                    decoded = _scalar("string", inner_wire, text, "runtime.TypeMeta")
                    api_version, kind = (decoded, kind) if inner == 1 else (api_version, decoded)
        elif number == 2 and wire == LEN:
            raw = value
        elif number == 3 and wire == LEN:
            encoding = _scalar("string", wire, value, "runtime.Unknown.contentEncoding")
        elif number != 4:
            raise _malformed(f"unexpected field {number} in the runtime.Unknown envelope")
    if encoding:
        raise _unsupported(f"content encoding {encoding!r}")
    if not kind or not api_version:
        raise _malformed("the envelope does not name the object's apiVersion and kind")
    return api_version, kind, raw


def decode(body: bytes) -> dict[str, Any]:
    """The JSON dict of a ``application/vnd.kubernetes.protobuf`` request body."""
    api_version, kind, raw = unwrap(body)
    name = message_for(api_version, kind)
    if name not in SCHEMA:
        raise _unsupported(f"kind {kind} of {api_version} is unknown")
    obj = message(name, raw)
    assert isinstance(obj, dict)
    return {"apiVersion": api_version, "kind": kind, **obj}
