"""Kubernetes resource quantities (``500m``, ``16Gi``, ``1e3``) as exact numbers.

One parser for the operator's limits, the local scheduler's fit check and the kubelet's
cgroups and downward API, so the three agree on what a quantity is. The grammar is
apimachinery's: an optionally signed decimal number followed by at most one suffix, which is a
binary one (``Ki`` .. ``Ei``), a decimal one (``n`` .. ``E``) or a decimal exponent (``e3``);
nothing else, not even surrounding white space, is a quantity.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))"
                       r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?")


def parse_quantity(value: Any) -> Decimal:
    """A quantity as a Decimal: ``parse_quantity("500m") == Decimal("0.5")``,
    ``parse_quantity("16Gi") == 17179869184``; a number stands for itself. Raises ValueError
    on anything else (a bool, ``None``, ``"16GB"``, ``" 2"``, ``"1e3m"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a quantity")
    match = _QUANTITY.fullmatch(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a quantity (examples: 500m, 2, 16Gi, 1.5G)")
    number, exponent, suffix = match.groups()
    if exponent:
        return Decimal(number + exponent)
    return Decimal(number) * _SUFFIXES[suffix or ""]
