"""JVMChaos: inject faults into a Java process of the selected containers with Byteman rules
(delay or throw in a method, force its return value, stress, GC, raw rules, MySQL client faults)."""
from __future__ import annotations

from typing import Any

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import Enum, Field, FieldError, Int, Str, join, one_of_required

COMMON = (
    Field("port", Int(minimum=1, maximum=65535), default=9277, label="Agent port",
          help="Port of the Byteman agent in the JVM."),
    Field("pid", Int(minimum=1), label="Process id",
          help="The Java process to attach to, as its id inside the container."),
    Field("name", Str(min_length=1, max_length=253), label="Rule name",
          help="Name of the Byteman rule, unique in the JVM (default: made from class, method and action)."),
    CONTAINER_NAMES,
    REMOTE_CLUSTER,
)

_JAVA_NAME = r"[A-Za-z_$][A-Za-z0-9_$]*"
CLASS = Field("class", Str(min_length=1, pattern=rf"{_JAVA_NAME}(\.{_JAVA_NAME})*",
                           pattern_help="a fully qualified Java class name, e.g. com.example.Main$Inner"),
              required=True, label="Class", help="The class, fully qualified, e.g. com.example.OrderService.")
METHOD = Field("method", Str(min_length=1, pattern=rf"{_JAVA_NAME}|<init>|<clinit>",
                             pattern_help="a Java method name, e.g. placeOrder"),
               required=True, label="Method", help="The method of the class, e.g. placeOrder.")


def latency(required: bool) -> Field:
    return Field("latency", Int(minimum=1), required=required, label="Latency", unit="ms",
                 help="Milliseconds added to each call.")


def exception(required: bool, help: str) -> Field:
    return Field("exception", Str(min_length=1), required=required, label="Exception", help=help)


def _stress_one(values: dict[str, Any], path: str) -> None:
    # Chaos Mesh's webhook: one of them, and not both ("inject stress on both CPU and memory is not support").
    if "cpuCount" in values and "memType" in values:
        raise FieldError(join(path, "memType"), "give cpuCount or memType, not both")


class TextChoice(Enum):
    """Chaos Mesh's string-typed versions: an unquoted YAML `8` is a number, which it refuses too."""

    def parse(self, value: Any, path: str) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in self.values:
            raise FieldError(path, f'write it as text, in quotes: "{value}"')
        return super().parse(value, path)


JVM = frozenset({Target.CONTAINER})


def _action(name: str, label: str, help: str, fields: tuple[Field, ...], **kw: Any) -> Action:
    return Action(name=name, label=label, help=help, fields=fields, targets=JVM, capability=Capability.BYTEMAN, **kw)


KIND = Kind(
    name="JVMChaos",
    label="JVM fault",
    help="Slow down or break methods of a Java application, stress its JVM or its MySQL client.",
    common_fields=COMMON,
    mode_value_in_spec=False,
    actions=(
        _action("latency", "Method latency", "Delay every call of a method.", (CLASS, METHOD, latency(True))),
        _action("return", "Return value", "Make a method return a given value at once.",
                (CLASS, METHOD, Field("value", Str(min_length=1), required=True, label="Value",
                                      help="The value returned, as Java would write it, e.g. 0 or \"chaos\"."))),
        _action("exception", "Throw exception", "Make a method throw an exception.",
                (CLASS, METHOD, exception(True, "The exception thrown, e.g. java.io.IOException(\"BOOM\")."))),
        _action(
            "stress", "JVM stress", "Load CPUs or fill the heap or stack inside the JVM.",
            (
                Field("cpuCount", Int(minimum=1), label="CPU cores", help="CPU cores to keep busy."),
                Field("memType", Enum(("heap", "stack")), label="Memory", help="heap or stack: which to fill."),
            ),
            validators=(one_of_required("cpuCount", "memType"), _stress_one),
        ),
        _action("gc", "Garbage collection", "Trigger garbage collection in the JVM again and again.", ()),
        _action("ruleData", "Byteman rule", "Install a Byteman rule written by hand.",
                (Field("ruleData", Str(min_length=1), required=True, label="Rule",
                       help="The rule in Byteman's rule language (RULE ... ENDRULE)."),)),
        _action(
            "mysql", "MySQL client fault", "Delay or fail the SQL statements a MySQL Connector/J client sends.",
            (
                Field("mysqlConnectorVersion", TextChoice(("5", "8")), required=True, label="Connector version",
                      help="Major version of mysql-connector-java: 5 or 8."),
                Field("database", Str(min_length=1), label="Database", help="Only this database (default: all)."),
                Field("table", Str(min_length=1), label="Table", help="Only this table (default: all)."),
                Field("sqlType", Enum(("select", "insert", "update", "delete", "replace")), label="Statement",
                      help="Only this kind of statement (default: all)."),
                latency(False),
                exception(False, "The exception message thrown instead of running the statement."),
            ),
            validators=(one_of_required("latency", "exception"),),
        ),
    ),
)
