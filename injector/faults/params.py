"""The parameter vocabulary of the catalogue: field types that parse manifest or form values into
typed values (durations, sizes, rates, percentages as injector.faults.units types), dump them back
to canonical JSON, and describe themselves as JSON Schema for the API and the portal's forms.

Errors carry the path of the field (`spec.delay.latency`) and say why in words a user understands;
an object collects the errors of all its fields rather than stopping at the first.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .units import Duration, Percent, Rate, Size, UnitError


class FieldError(ValueError):
    """One bad value: where (a dotted path) and why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message = path, message


class FieldErrors(ValueError):
    """Several bad values at once."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)


def flatten(error: FieldError | FieldErrors) -> list[FieldError]:
    return error.errors if isinstance(error, FieldErrors) else [error]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


class Type:
    """A field type. `parse` returns the typed value; `dump` gives canonical JSON that parses back to it."""

    def parse(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Type):
    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None
    pattern_help: str = ""

    def parse(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise FieldError(path, f"{describe(value)} is not a string")
        if len(value) < self.min_length:
            need = "must not be empty" if self.min_length == 1 else f"at least {self.min_length} characters"
            raise FieldError(path, need)
        if self.max_length is not None and len(value) > self.max_length:
            raise FieldError(path, f"at most {self.max_length} characters")
        if self.pattern and not re.fullmatch(self.pattern, value):
            why = self.pattern_help or f"must match {self.pattern}"
            raise FieldError(path, f"{describe(value)} is not valid: {why}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.min_length:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern:
            out["pattern"] = f"^(?:{self.pattern})$"
        return out


@dataclass(frozen=True)
class Int(Type):
    minimum: int | None = None
    maximum: int | None = None
    #: Chaos Mesh keeps some numbers in strings ("25"); accept those and write them back as strings.
    as_string: bool = False

    def parse(self, value: Any, path: str) -> int:
        number = value
        if self.as_string and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int):
            raise FieldError(path, f"{describe(value)} is not a whole number")
        if self.minimum is not None and number < self.minimum:
            raise FieldError(path, f"{number} is below the minimum of {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise FieldError(path, f"{number} is above the maximum of {self.maximum}")
        return number

    def dump(self, value: int) -> Any:
        return str(value) if self.as_string else value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": ["integer", "string"] if self.as_string else "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Float(Type):
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(path, f"{describe(value)} is not a number")
        if self.minimum is not None and value < self.minimum:
            raise FieldError(path, f"{value} is below the minimum of {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise FieldError(path, f"{value} is above the maximum of {self.maximum}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Bool(Type):
    def parse(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise FieldError(path, f"{describe(value)} is not true or false")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Enum(Type):
    values: tuple[Any, ...]

    def parse(self, value: Any, path: str) -> Any:
        if value not in self.values or isinstance(value, bool) != any(isinstance(v, bool) for v in self.values):
            choices = ", ".join(str(v) for v in self.values)
            raise FieldError(path, f"{describe(value)} is not one of: {choices}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}


@dataclass(frozen=True)
class DurationType(Type):
    minimum: Duration | None = Duration(0)
    maximum: Duration | None = None

    def parse(self, value: Any, path: str) -> Duration:
        try:
            duration = Duration.parse(value)
        except UnitError as error:
            raise FieldError(path, str(error)) from None
        if self.minimum is not None and duration < self.minimum:
            raise FieldError(path, f"{describe(value)} is less than {self.minimum}")
        if self.maximum is not None and duration > self.maximum:
            raise FieldError(path, f"{describe(value)} is more than {self.maximum}")
        return duration

    def dump(self, value: Duration) -> str:
        return str(value)

    def schema(self) -> dict[str, Any]:
        sign = "[-+]?" if self.minimum is None or self.minimum.nanoseconds < 0 else "[+]?"
        return {
            "type": "string",
            "format": "duration",
            "pattern": rf"^{sign}(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)$",
        }


@dataclass(frozen=True)
class SizeType(Type):
    allow_percent: bool = True

    def parse(self, value: Any, path: str) -> Size:
        try:
            return Size.parse(value, allow_percent=self.allow_percent)
        except UnitError as error:
            raise FieldError(path, str(error)) from None

    def dump(self, value: Size) -> str:
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "size-or-percent" if self.allow_percent else "size"}


@dataclass(frozen=True)
class RateType(Type):
    def parse(self, value: Any, path: str) -> Rate:
        try:
            return Rate.parse(value)
        except UnitError as error:
            raise FieldError(path, str(error)) from None

    def dump(self, value: Rate) -> str:
        return str(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "rate"}


@dataclass(frozen=True)
class PercentType(Type):
    #: Chaos Mesh writes most percentages as strings ("25"); keep that shape on the way out.
    as_string: bool = True

    def parse(self, value: Any, path: str) -> Percent:
        try:
            return Percent.parse(value)
        except UnitError as error:
            raise FieldError(path, str(error)) from None

    def dump(self, value: Percent) -> Any:
        if self.as_string:
            return str(value)
        return int(value.value) if value.value == int(value.value) else value.value

    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "number"], "format": "percent", "minimum": 0, "maximum": 100}


@dataclass(frozen=True)
class ListOf(Type):
    item: Type
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False

    def parse(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise FieldError(path, f"{describe(value)} is not a list")
        if len(value) < self.min_items:
            need = "must not be empty" if self.min_items == 1 else f"needs at least {self.min_items} items"
            raise FieldError(path, need)
        if self.max_items is not None and len(value) > self.max_items:
            raise FieldError(path, f"at most {self.max_items} items")
        errors: list[FieldError] = []
        out = []
        for index, item in enumerate(value):
            try:
                out.append(self.item.parse(item, join(path, index)))
            except (FieldError, FieldErrors) as error:
                errors.extend(flatten(error))
        if errors:
            raise FieldErrors(errors)
        if self.unique and len({repr(self.item.dump(v)) for v in out}) != len(out):
            raise FieldError(path, "items must not repeat")
        return out

    def dump(self, value: list[Any]) -> list[Any]:
        return [self.item.dump(v) for v in value]

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        if self.unique:
            out["uniqueItems"] = True
        return out


@dataclass(frozen=True)
class MapOf(Type):
    value: Type
    key: Str = Str(min_length=1)

    def parse(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise FieldError(path, f"{describe(value)} is not a map of names to values")
        errors: list[FieldError] = []
        out = {}
        for key, item in value.items():
            try:
                out[self.key.parse(key, join(path, str(key)))] = self.value.parse(item, join(path, str(key)))
            except (FieldError, FieldErrors) as error:
                errors.extend(flatten(error))
        if errors:
            raise FieldErrors(errors)
        return out

    def dump(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: self.value.dump(v) for k, v in value.items()}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value.schema()}


MISSING: Any = object()


@dataclass(frozen=True)
class Field:
    """One named parameter: its manifest key (Chaos Mesh's spelling), type, and what a form shows."""

    name: str
    type: Type
    required: bool = False
    default: Any = MISSING
    label: str = ""
    help: str = ""
    unit: str = ""

    def schema(self) -> dict[str, Any]:
        out = dict(self.type.schema())
        out["title"] = self.label or self.name
        if self.help:
            out["description"] = self.help
        if self.unit:
            out["x-unit"] = self.unit
        if self.default is not MISSING:
            out["default"] = self.default
        return out


Validator = Callable[[dict[str, Any], str], None]


@dataclass(frozen=True)
class Obj(Type):
    """A map with known keys: unknown keys are refused, required ones demanded, and `validators`
    check rules across fields once each field has parsed (they raise FieldError)."""

    fields: tuple[Field, ...]
    validators: tuple[Validator, ...] = ()
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def parse(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise FieldError(path, f"{describe(value)} is not a map of fields")
        errors: list[FieldError] = []
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = self.by_name.get(key)
            if spec is None:
                known = ", ".join(self.by_name) or "none"
                errors.append(FieldError(join(path, str(key)), f"unknown field (known here: {known})"))
                continue
            if item is None:  # YAML's `key:` with nothing after it means "not given"
                continue
            try:
                out[key] = spec.type.parse(item, join(path, key))
            except (FieldError, FieldErrors) as error:
                errors.extend(flatten(error))
        for spec in self.fields:
            where = join(path, spec.name)
            reported = any(e.path == where or e.path.startswith((where + ".", where + "[")) for e in errors)
            if spec.required and spec.name not in out and not reported:
                errors.append(FieldError(join(path, spec.name), "is required"))
        if not errors:
            for validator in self.validators:
                try:
                    validator(out, path)
                except (FieldError, FieldErrors) as error:
                    errors.extend(flatten(error))
        if errors:
            raise FieldErrors(errors)
        return out

    def dump(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: self.by_name[k].type.dump(v) for k, v in value.items()}

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.schema() for f in self.fields},
            "additionalProperties": False,
        }
        required = [f.name for f in self.fields if f.required]
        if required:
            out["required"] = required
        return out


# Validators used by many kinds ---------------------------------------------------------------------


def one_of_required(*names: str) -> Validator:
    def check(values: dict[str, Any], path: str) -> None:
        if not any(n in values for n in names):
            raise FieldError(join(path, names[0]), f"give at least one of: {', '.join(names)}")

    return check


def requires(name: str, *needed: str) -> Validator:
    """`name` may only be given together with each of `needed`."""

    def check(values: dict[str, Any], path: str) -> None:
        if name in values:
            for other in needed:
                if other not in values:
                    raise FieldError(join(path, other), f"is required when {name} is given")

    return check


def fields(*items: Field | Iterable[Field]) -> tuple[Field, ...]:
    """Flatten fields and groups of fields into one tuple (kinds share groups such as selectors)."""
    out: list[Field] = []
    for item in items:
        out.extend([item] if isinstance(item, Field) else item)
    return tuple(out)
