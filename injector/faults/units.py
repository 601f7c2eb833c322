"""Durations, sizes, rates and percentages: parsed into typed values once, here, and nowhere else.

Each parser takes what a manifest or a form may hold (a string, and for percentages a number too)
and returns a frozen value whose `str()` is the canonical text that parses back to the same value.
Bad input raises `UnitError` with a message that says what was expected.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


class UnitError(ValueError):
    """A value that is not a valid duration, size, rate or percentage; the message says why."""


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# Durations -----------------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


@dataclass(frozen=True, order=True)
class Duration:
    """A signed span of time in nanoseconds, written as Go writes them: `1h30m`, `100ms`, `-2m`."""

    nanoseconds: int

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        if not isinstance(value, str):
            raise UnitError(f"{_show(value)} is not a duration (write it as text, e.g. \"30s\" or \"1h30m\")")
        text = value.strip()
        sign, body = 1, text
        if body and body[0] in "+-":
            sign, body = (-1 if body[0] == "-" else 1), body[1:]
        if body == "0":
            return cls(0)
        position, total = 0, Decimal(0)
        for match in _DURATION_PART.finditer(body):
            if match.start() != position:
                break
            total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if not body or position != len(body):
            raise UnitError(
                f"{_show(value)} is not a duration: use numbers with units ns, us, ms, s, m, h "
                "(e.g. \"1.5h\", \"100ms\", \"-2m\")"
            )
        return cls(sign * int(total))

    @classmethod
    def of_seconds(cls, seconds: float) -> Duration:
        return cls(int(Decimal(str(seconds)) * 1_000_000_000))

    @property
    def seconds(self) -> float:
        return self.nanoseconds / 1_000_000_000

    def __str__(self) -> str:
        """Go's time.Duration.String(): `1h30m0s`, `100ms`, `1.5s`, `-2m0s`, `0s`."""
        n = self.nanoseconds
        if n == 0:
            return "0s"
        sign, n = ("-" if n < 0 else ""), abs(n)
        if n < 1_000_000_000:
            for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
                if n >= size:
                    return sign + _trim(Decimal(n) / size) + unit
        hours, rest = divmod(n, 3600 * 1_000_000_000)
        minutes, rest = divmod(rest, 60 * 1_000_000_000)
        seconds = _trim(Decimal(rest) / 1_000_000_000)
        text = f"{seconds}s"
        if hours or minutes:
            text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
        return sign + text


def _trim(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# Sizes ---------------------------------------------------------------------------------------------

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
    # stress-ng and go-units spellings: K, M, G mean binary multiples there.
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$")
# Largest first, so the canonical text uses the biggest unit that divides the amount exactly.
_CANONICAL_SIZE_UNITS = sorted(
    [("TiB", 1024**4), ("TB", 1000**4), ("GiB", 1024**3), ("GB", 1000**3), ("MiB", 1024**2), ("MB", 1000**2),
     ("KiB", 1024), ("KB", 1000)],
    key=lambda unit: -unit[1],
)


@dataclass(frozen=True)
class Size:
    """An amount of bytes (`256MB`, `1GiB`, `4096`) or a share of what there is (`50%`)."""

    bytes: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: Any, allow_percent: bool = True) -> Size:
        if isinstance(value, Size):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise UnitError(f"{_show(value)} is not a size (e.g. \"256MB\", \"1GiB\" or \"50%\")")
        text = str(value).strip()
        if text.endswith("%"):
            if not allow_percent:
                raise UnitError(f"{_show(value)}: a percentage is not allowed here; give bytes (e.g. \"256MB\")")
            return cls(percent=Percent.parse(text).value)
        match = _SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise UnitError(
                f"{_show(value)} is not a size: use a number with B, KB, MB, GB, TB (1000s) "
                "or KiB, MiB, GiB, TiB (1024s)"
                + (", or a percentage like \"50%\"" if allow_percent else "")
            )
        amount = Decimal(match.group(1)) * _SIZE_UNITS[unit]
        if amount != int(amount):
            raise UnitError(f"{_show(value)} is not a whole number of bytes")
        return cls(bytes=int(amount))

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{_trim(Decimal(str(self.percent)))}%"
        for unit, size in _CANONICAL_SIZE_UNITS:
            if self.bytes and self.bytes % size == 0:
                return f"{self.bytes // size}{unit}"
        return f"{self.bytes}B"


# Rates ---------------------------------------------------------------------------------------------

# tc's units: bit-based (bit, kbit, ...) and byte-based (bps = bytes per second, kbps, ...), SI and IEC.
_RATE_UNITS = {
    "bit": 1,
    "kbit": 1000,
    "mbit": 1000**2,
    "gbit": 1000**3,
    "tbit": 1000**4,
    "kibit": 1024,
    "mibit": 1024**2,
    "gibit": 1024**3,
    "tibit": 1024**4,
    "bps": 8,
    "kbps": 8 * 1000,
    "mbps": 8 * 1000**2,
    "gbps": 8 * 1000**3,
    "tbps": 8 * 1000**4,
    "kibps": 8 * 1024,
    "mibps": 8 * 1024**2,
    "gibps": 8 * 1024**3,
    "tibps": 8 * 1024**4,
}
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-zA-Z]+)$")


@dataclass(frozen=True, order=True)
class Rate:
    """A bandwidth in bits per second, written as tc writes them: `1mbit`, `10kbps` (bytes), `100bit`."""

    bits_per_second: int

    @classmethod
    def parse(cls, value: Any) -> Rate:
        if isinstance(value, Rate):
            return value
        match = _RATE.match(value.strip()) if isinstance(value, str) else None
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _RATE_UNITS:
            raise UnitError(
                f"{_show(value)} is not a rate: use a number with bit, kbit, mbit, gbit (bits per second) or "
                "bps, kbps, mbps, gbps (bytes per second), e.g. \"1mbit\""
            )
        amount = Decimal(match.group(1)) * _RATE_UNITS[unit]
        if amount <= 0:
            raise UnitError(f"{_show(value)}: a rate must be more than zero")
        return cls(int(amount))

    def __str__(self) -> str:
        # Whole bytes are written in Chaos Mesh's byte units (bps, kbps, ...: the only ones it takes),
        # anything else in tc's bit units.
        if self.bits_per_second % 8 == 0:
            per_second = self.bits_per_second // 8
            for unit, size in (("tbps", 1000**4), ("gbps", 1000**3), ("mbps", 1000**2), ("kbps", 1000)):
                if per_second % size == 0:
                    return f"{per_second // size}{unit}"
            return f"{per_second}bps"
        for unit, size in (("gbit", 1000**3), ("mbit", 1000**2), ("kbit", 1000)):
            if self.bits_per_second % size == 0:
                return f"{self.bits_per_second // size}{unit}"
        return f"{self.bits_per_second}bit"


# Percentages ---------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Percent:
    """0 to 100, from `25`, `"25"`, `"25%"` or `"0.5"`."""

    value: float

    @classmethod
    def parse(cls, value: Any) -> Percent:
        if isinstance(value, Percent):
            return value
        if isinstance(value, bool):
            raise UnitError(f"{_show(value)} is not a percentage")
        text = str(value).strip() if isinstance(value, (str, int, float)) else None
        if text is not None and text.endswith("%"):
            text = text[:-1].strip()
        try:
            number = Decimal(text) if text else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise UnitError(f"{_show(value)} is not a percentage: give a number from 0 to 100 (e.g. 25 or \"25\")")
        if not (0 <= number <= 100):
            raise UnitError(f"{_show(value)} is out of range: a percentage is from 0 to 100")
        return cls(float(number))

    def __str__(self) -> str:
        return _trim(Decimal(str(self.value)))
