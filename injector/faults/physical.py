"""PhysicalMachineChaos: chaosd's faults on hosts (stress, disk, network, processes, JVM, clock,
Redis, Kafka, files, VMs), picked by a host selector or by the deprecated `address` list.

The spec names the action and carries its parameters under a key of the same name:
`spec: {action: stress-cpu, stress-cpu: {load: 10, workers: 1}}`. The actions are those of Chaos
Mesh's CRD enum (api/v1alpha1/physical_machine_chaos_types.go), with these choices:

- `user_defined` is not an action here: it runs `attackCmd`/`recoverCmd` shell strings and
  Chaosplane never runs shell strings. A manifest naming it is refused at `spec.action` with that
  reason (not "unknown action"), and the kind's help says so in the catalogue.
- The `http-abort`, `http-delay`, `http-config` and `http-request` types exist in Chaos Mesh's Go
  code but not in the CRD's action enum (Kubernetes refuses them), so they are not offered.
- `process.recoverCmd` and `kafka-fill.reloadCommand` are shell strings: refused with the reason.
  Inline `password`s (Redis, Kafka) are refused too: credentials never sit in a fault definition.
- One-shot (nothing undone at recovery): `redis-restart`, `redis-expiration`, `redis-penetration`
  and `file-replace` (chaosd keeps no copy). `process` is not one-shot: a stopped process (SIGSTOP)
  is continued at recovery, a killed one stays dead. `file-delete` is not one-shot either: chaosd
  moves the file aside and puts it back. `vm` destroys the VM and starts it again at recovery.
"""
from __future__ import annotations

from typing import Any

from .common import REMOTE_CLUSTER
from .model import Capability, FaultSpec, Kind, SelectorKind
from .network import BANDWIDTH_FIELDS
from .params import (
    Bool,
    DurationType,
    Enum,
    Field,
    FieldError,
    Int,
    ListOf,
    PercentType,
    RateType,
    SizeType,
    Str,
    join,
    one_of_required,
    requires,
)
from .physical_actions import (
    ABS_PATH,
    ACCEPT_TCP_FLAGS,
    CLASS_METHOD,
    CLOCKS,
    DIR_NAME,
    EXCEPTION,
    FILE_NAME,
    HOSTNAMES,
    IP_ADDRESSES,
    IP_PROTOCOL,
    JVM_COMMON,
    KAFKA_COMMON,
    KAFKA_REFUSED,
    MESSAGE_SIZE,
    NETWORK_COMMON,
    POSITIVE,
    PROCESS,
    REDIS_COMMON,
    REDIS_REFUSED,
    SENTINEL,
    SHELL_REFUSED,
    STRESS_OPTIONS,
    CommaList,
    HostPort,
    IPAddress,
    _both_or_neither,
    _flags_need_tcp,
    _is_hostname,
    _nonzero_percent,
    _not_both,
    _ports_need_protocol,
    _share,
    _true_one_of,
    action,
    device,
)

USER_DEFINED = "user_defined"
USER_DEFINED_REFUSED = (
    "user_defined runs shell commands (attackCmd, recoverCmd); Chaosplane never runs shell strings, "
    "so this action is not offered"
)

NETWORK = (_ports_need_protocol,)

ACTIONS = (
    # Stress ---------------------------------------------------------------------------------------
    action(
        "stress-cpu", "CPU stress", "Load the host's CPUs with stress-ng workers.",
        (
            Field("load", Int(minimum=1, maximum=100), required=True, label="Load", unit="%",
                  help="Load each worker puts on its CPU, 1-100."),
            Field("workers", Int(minimum=1, maximum=1024), required=True, label="Workers",
                  help="Number of stress-ng CPU workers."),
            STRESS_OPTIONS,
        ),
        Capability.STRESS_NG,
    ),
    action(
        "stress-mem", "Memory stress", "Take memory on the host with a stress-ng worker.",
        (
            Field("size", SizeType(), required=True, label="Size",
                  help="Memory to take: bytes (e.g. 256MB, 1GiB) or a share of the total (e.g. 50%)."),
            STRESS_OPTIONS,
        ),
        Capability.STRESS_NG,
    ),
    # Disk -----------------------------------------------------------------------------------------
    action(
        "disk-read-payload", "Disk read load", "Read from a file or device with dd, to load the disk.",
        (
            Field("size", SizeType(allow_percent=False), required=True, label="Size",
                  help="How much to read, e.g. 1GiB."),
            Field("path", ABS_PATH, label="Path", help="The file or device to read (default: the root device)."),
            Field("payload-process-num", Int(minimum=1, maximum=255), required=True, label="Processes",
                  help="Number of dd processes reading at once, 1-255."),
        ),
        Capability.FILESYSTEM,
    ),
    action(
        "disk-write-payload", "Disk write load", "Write to a new file with dd, to load the disk.",
        (
            Field("size", SizeType(allow_percent=False), required=True, label="Size",
                  help="How much to write, e.g. 1GiB."),
            Field("path", ABS_PATH, label="Path",
                  help="A new file or a directory to write in (default: a temporary file), removed afterwards."),
            Field("payload-process-num", Int(minimum=1, maximum=255), required=True, label="Processes",
                  help="Number of dd processes writing at once, 1-255."),
        ),
        Capability.FILESYSTEM,
    ),
    action(
        "disk-fill", "Fill disk", "Fill the disk with a file of the given size; the file is removed at recovery.",
        (
            Field("size", SizeType(allow_percent=False), required=True, label="Size",
                  help="Size of the file, e.g. 10GiB."),
            Field("path", ABS_PATH, label="Path",
                  help="A new file or a directory to create it in (default: chaosd's working directory)."),
            Field("fill-by-fallocate", Bool(), default=True, label="Use fallocate",
                  help="Reserve the space with fallocate (fast) rather than writing it with dd."),
        ),
        Capability.FILESYSTEM,
    ),
    # Network --------------------------------------------------------------------------------------
    action(
        "network-corrupt", "Corrupt packets", "Corrupt a share of the host's outgoing packets.",
        NETWORK_COMMON + (_share("to corrupt"),), Capability.NETEM, validators=NETWORK + (_nonzero_percent,),
    ),
    action(
        "network-duplicate", "Duplicate packets", "Send a share of the host's outgoing packets twice.",
        NETWORK_COMMON + (_share("to duplicate"),), Capability.NETEM, validators=NETWORK + (_nonzero_percent,),
    ),
    action(
        "network-loss", "Drop packets", "Drop a share of the host's outgoing packets.",
        NETWORK_COMMON + (_share("to drop"),), Capability.NETEM, validators=NETWORK + (_nonzero_percent,),
    ),
    action(
        "network-delay", "Delay packets", "Delay the host's outgoing packets.",
        NETWORK_COMMON
        + (
            Field("latency", POSITIVE, required=True, label="Latency", help="Delay added to each packet, e.g. 100ms."),
            Field("jitter", DurationType(), label="Jitter", help="Random variation of the delay, e.g. 10ms."),
            ACCEPT_TCP_FLAGS,
        ),
        Capability.NETEM,
        validators=NETWORK + (_flags_need_tcp,),
    ),
    action(
        "network-partition", "Partition", "Drop all traffic between the host and some addresses, in one direction.",
        (
            device(),
            IP_ADDRESSES,
            HOSTNAMES,
            Field("direction", Enum(("to", "from")), required=True, label="Direction",
                  help="to: packets from the host to the addresses; from: packets from them to the host."),
            IP_PROTOCOL,
            ACCEPT_TCP_FLAGS,
        ),
        Capability.IPTABLES,
        validators=(one_of_required("ip-address", "hostname"), _flags_need_tcp),
    ),
    action(
        "network-dns", "DNS", "Point the host at another DNS server, or map a host name to a wrong address.",
        (
            Field("dns-server", IPAddress(), label="DNS server",
                  help="Use this DNS server in /etc/resolv.conf (chaosd's default: 123.123.123.123)."),
            Field("dns-ip", IPAddress(), label="Mapped address", help="The address dns-domain-name resolves to."),
            Field("dns-domain-name", Str(max_length=253), label="Host name",
                  help="The host name to map to dns-ip in /etc/hosts."),
        ),
        Capability.DNS_PROXY,
        validators=(
            _both_or_neither("dns-domain-name", "dns-ip"),
            lambda v, path: _check_hostname(v, path, "dns-domain-name"),
        ),
    ),
    action(
        "network-bandwidth", "Bandwidth", "Limit the host's outgoing bandwidth with a token bucket.",
        (
            *BANDWIDTH_FIELDS,
            device(),
            IP_ADDRESSES,
            HOSTNAMES,
        ),
        Capability.TC_TBF,
        validators=(requires("minburst", "peakrate"),),
    ),
    action(
        "network-flood", "Flood", "Send heavy traffic from the host to an address with iperf.",
        (
            Field("rate", RateType(), required=True, label="Rate", help="Traffic to send, e.g. 10mbps (bytes/s)."),
            Field("ip-address", IPAddress(), required=True, label="IP address", help="Where to send the traffic."),
            Field("port", Int(minimum=1, maximum=65535, as_string=True), required=True, label="Port",
                  help="The port to send it to."),
            Field("parallel", Int(minimum=1, maximum=128), default=1, label="Parallel streams",
                  help="Number of iperf client threads."),
            Field("duration", POSITIVE, required=True, label="Duration", help="How long iperf runs, e.g. 30s."),
        ),
        None,
    ),
    action(
        "network-down", "Interface down", "Take a network interface of the host down for a while.",
        (
            device("The interface to take down, e.g. eth1."),
            Field("duration", POSITIVE, required=True, label="Down for",
                  help="How long the interface stays down before chaosd brings it up, e.g. 1m."),
        ),
        None,
    ),
    # Processes ------------------------------------------------------------------------------------
    action(
        "process", "Signal process", "Send a signal to processes of the host, by name or process id; "
        "a stopped process (SIGSTOP) is continued at recovery, a killed one is not restarted.",
        (
            Field("process", Str(min_length=1, max_length=255, pattern=r"[^\s/]+|\d+",
                                 pattern_help="a process name (no spaces or /) or a process id"),
                  required=True, label="Process", help="The process name or id, e.g. nginx or 1234."),
            Field("signal", Int(minimum=1, maximum=64), required=True, label="Signal",
                  help="The signal number, 1-64, e.g. 9 (SIGKILL), 15 (SIGTERM), 19 (SIGSTOP)."),
        ),
        Capability.PROCESS_SIGNAL,
        targets=PROCESS,
        refused=(("recoverCmd", SHELL_REFUSED),),
    ),
    # JVM ------------------------------------------------------------------------------------------
    action(
        "jvm-exception", "JVM exception", "Make a method of a Java process throw an exception.",
        JVM_COMMON + CLASS_METHOD + (
            Field("exception", EXCEPTION, required=True, label="Exception",
                  help="The exception to throw, e.g. java.io.IOException(\"BOOM\")."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
    ),
    action(
        "jvm-gc", "JVM GC", "Trigger garbage collection in a Java process.", JVM_COMMON, Capability.BYTEMAN,
        targets=PROCESS,
    ),
    action(
        "jvm-latency", "JVM method latency", "Delay every call of a method of a Java process.",
        JVM_COMMON + CLASS_METHOD + (
            Field("latency", Int(minimum=1), required=True, label="Latency", unit="ms",
                  help="Milliseconds added to each call."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
    ),
    action(
        "jvm-return", "JVM return value", "Make a method of a Java process return a given value at once.",
        JVM_COMMON + CLASS_METHOD + (
            Field("value", Str(min_length=1, max_length=1024), required=True, label="Return value",
                  help="The value to return: a number or a quoted string."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
    ),
    action(
        "jvm-stress", "JVM stress", "Load the CPUs or fill the memory of a Java process from inside it.",
        JVM_COMMON + (
            Field("cpu-count", Int(minimum=1, maximum=1024), label="CPU cores", help="CPU cores to keep busy."),
            Field("mem-type", Enum(("stack", "heap")), label="Memory", help="Memory to fill: stack or heap."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
        validators=(one_of_required("cpu-count", "mem-type"), _not_both("cpu-count", "mem-type")),
    ),
    action(
        "jvm-rule-data", "JVM Byteman rule", "Install a Byteman rule, given as text, in a Java process.",
        JVM_COMMON + (
            Field("rule-data", Str(min_length=1, max_length=65536), required=True, label="Rule",
                  help="The Byteman rule (RULE ... ENDRULE)."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
        validators=(lambda v, path: _check_rule(v, path),),
    ),
    action(
        "jvm-mysql", "JVM MySQL fault", "Make MySQL queries of a Java process fail or slow down.",
        JVM_COMMON + (
            Field("mysqlConnectorVersion", Enum(("5", "8")), required=True, label="Connector version",
                  help="Major version of mysql-connector-java: 5 or 8."),
            Field("database", Str(min_length=1, max_length=64), label="Database",
                  help="Only queries on this database (default: all)."),
            Field("table", Str(min_length=1, max_length=64), label="Table",
                  help="Only queries on this table (default: all)."),
            Field("sqlType", Enum(("select", "insert", "update", "delete", "replace")), label="Statement",
                  help="Only this kind of statement (default: all)."),
            Field("exception", EXCEPTION, label="Exception", help="The exception message to throw."),
            Field("latency", Int(minimum=1), label="Latency", unit="ms", help="Milliseconds added to each query."),
        ),
        Capability.BYTEMAN, targets=PROCESS,
        validators=(one_of_required("exception", "latency"),),
    ),
    # Clock ----------------------------------------------------------------------------------------
    action(
        "clock", "Clock skew", "Shift the clocks a process of the host sees.",
        (
            Field("pid", Int(minimum=1), required=True, label="Process id", help="The process whose time to shift."),
            Field("time-offset", DurationType(minimum=None), required=True, label="Offset",
                  help="How far to shift, e.g. -5m or 1h."),
            Field("clock-ids-slice", CommaList(item=lambda c: c in CLOCKS, item_help=f"one of: {', '.join(CLOCKS)}"),
                  default="CLOCK_REALTIME", label="Clocks",
                  help="The clocks to shift, comma-separated, e.g. CLOCK_REALTIME,CLOCK_MONOTONIC."),
        ),
        Capability.PTRACE_VDSO, targets=PROCESS,
        validators=(lambda v, path: _nonzero_offset(v, path),),
    ),
    # Redis ----------------------------------------------------------------------------------------
    action(
        "redis-expiration", "Redis key expiry", "Make Redis keys expire; expired keys are gone for good.",
        REDIS_COMMON + (
            Field("expiration", DurationType(), label="Expire after",
                  help="Time left before the keys expire, e.g. 1m (default: at once)."),
            Field("key", Str(min_length=1, max_length=512), label="Key", help="The key to expire (default: all keys)."),
            Field("option", Enum(("NX", "XX", "GT", "LT")), label="Condition",
                  help="EXPIRE's condition: NX (no expiry yet), XX (has one), GT (longer), LT (shorter)."),
        ),
        Capability.REDIS_CLIENT, refused=REDIS_REFUSED, one_shot=True,
    ),
    action(
        "redis-penetration", "Redis cache penetration", "Send requests for keys Redis does not have, once.",
        REDIS_COMMON + (
            Field("requestNum", Int(minimum=1, maximum=10_000_000), required=True, label="Requests",
                  help="Number of requests to send."),
        ),
        Capability.REDIS_CLIENT, refused=REDIS_REFUSED, one_shot=True,
    ),
    action(
        "redis-cacheLimit", "Redis memory limit", "Lower Redis's maxmemory; it is put back at recovery.",
        REDIS_COMMON + (
            Field("cacheSize", SizeType(allow_percent=False), label="Size", help="The new maxmemory, e.g. 256MiB."),
            Field("percent", PercentType(), label="Share", unit="%", help="The new maxmemory as a share of the old."),
        ),
        Capability.REDIS_CLIENT, refused=REDIS_REFUSED,
        validators=(one_of_required("cacheSize", "percent"), _not_both("cacheSize", "percent")),
    ),
    action(
        "redis-restart", "Restart Redis Sentinel", "Stop a Redis Sentinel and start it again, once.",
        (REDIS_COMMON[0], Field("conf", ABS_PATH, required=True, label="Sentinel config",
                                help="Absolute path of the Sentinel configuration file, used to start it again."))
        + SENTINEL[1:],
        Capability.REDIS_CLIENT, refused=REDIS_REFUSED, one_shot=True,
    ),
    action(
        "redis-stop", "Stop Redis Sentinel", "Stop a Redis Sentinel; it is started again at recovery.",
        REDIS_COMMON + SENTINEL, Capability.REDIS_CLIENT, refused=REDIS_REFUSED,
    ),
    # Kafka ----------------------------------------------------------------------------------------
    action(
        "kafka-fill", "Fill Kafka", "Fill a Kafka topic with messages up to a size.",
        KAFKA_COMMON + (
            MESSAGE_SIZE,
            Field("maxBytes", Int(minimum=1, maximum=2**63 - 1), required=True, label="Up to", unit="bytes",
                  help="Bytes to write to the topic."),
        ),
        Capability.KAFKA_CLIENT, refused=KAFKA_REFUSED + (("reloadCommand", SHELL_REFUSED),),
    ),
    action(
        "kafka-flood", "Flood Kafka", "Send messages to a Kafka topic as fast as the threads can.",
        KAFKA_COMMON + (
            MESSAGE_SIZE,
            Field("threads", Int(minimum=1, maximum=1024), required=True, label="Threads",
                  help="Number of producer threads."),
        ),
        Capability.KAFKA_CLIENT, refused=KAFKA_REFUSED,
    ),
    action(
        "kafka-io", "Kafka disk I/O", "Make a topic's partition files unreadable or unwritable for the broker.",
        (
            KAFKA_COMMON[0],
            Field("configFile", ABS_PATH, label="Broker config",
                  help="Absolute path of the broker's server.properties (to find its log directories)."),
            Field("nonReadable", Bool(), default=False, label="Not readable", help="Make the files unreadable."),
            Field("nonWritable", Bool(), default=False, label="Not writable", help="Make the files unwritable."),
        ),
        Capability.FILESYSTEM,
        validators=(_true_one_of("nonReadable", "nonWritable"),),
    ),
    # Files ----------------------------------------------------------------------------------------
    action(
        "file-create", "Create file", "Create a file or a directory; it is removed at recovery.",
        (FILE_NAME, DIR_NAME), Capability.FILESYSTEM,
        validators=(one_of_required("file-name", "dir-name"), _not_both("file-name", "dir-name")),
    ),
    action(
        "file-modify", "Change file mode", "Change a file's permission bits; the old ones are put back at recovery.",
        (
            Field("file-name", ABS_PATH, required=True, label="File", help="Absolute path of the file."),
            Field("privilege", Int(minimum=1, maximum=7777), required=True, label="Mode",
                  help="The new mode, written as octal digits like chmod's, e.g. 600 or 777."),
        ),
        Capability.FILESYSTEM,
        validators=(lambda v, path: _check_mode(v, path),),
    ),
    action(
        "file-delete", "Delete file", "Make a file or directory disappear: chaosd moves it aside and puts it back "
        "at recovery.",
        (FILE_NAME, DIR_NAME), Capability.FILESYSTEM,
        validators=(one_of_required("file-name", "dir-name"), _not_both("file-name", "dir-name")),
    ),
    action(
        "file-rename", "Rename file", "Rename a file; it gets its name back at recovery.",
        (
            Field("source-file", ABS_PATH, required=True, label="From", help="Absolute path of the file."),
            Field("dest-file", ABS_PATH, required=True, label="To", help="Its new absolute path."),
        ),
        Capability.FILESYSTEM,
        validators=(lambda v, path: _different(v, path),),
    ),
    action(
        "file-append", "Append to file", "Append data to a file; the original is put back at recovery.",
        (
            Field("file-name", ABS_PATH, required=True, label="File", help="Absolute path of the file."),
            Field("data", Str(min_length=1, max_length=65536), required=True, label="Data", help="The text to append."),
            Field("count", Int(minimum=1, maximum=100_000), default=1, label="Times",
                  help="How many times to append it."),
        ),
        Capability.FILESYSTEM,
    ),
    action(
        "file-replace", "Replace in file", "Replace a string in a file, once; chaosd does not put it back.",
        (
            Field("file-name", ABS_PATH, required=True, label="File", help="Absolute path of the file."),
            Field("origin-string", Str(min_length=1, max_length=65536), required=True, label="Replace",
                  help="The text to replace."),
            Field("dest-string", Str(min_length=1, max_length=65536), required=True, label="With",
                  help="The text to put instead."),
            Field("line", Int(minimum=0), default=0, label="Line", help="Only on this line (0: every line)."),
        ),
        Capability.FILESYSTEM, one_shot=True,
    ),
    # VM -------------------------------------------------------------------------------------------
    action(
        "vm", "Destroy VM", "Power off a libvirt virtual machine on the host (virsh destroy); it is started "
        "again at recovery.",
        (
            Field("vm-name", Str(min_length=1, max_length=255, pattern=r"[a-zA-Z0-9][-a-zA-Z0-9_.+]*",
                                 pattern_help="a libvirt domain name (letters, digits, - _ . +)"),
                  required=True, label="VM", help="The libvirt domain name of the VM."),
        ),
        None,
    ),
)


def _check_hostname(values: dict[str, Any], path: str, name: str) -> None:
    if name in values and not _is_hostname(values[name]):
        raise FieldError(join(path, name), f"{values[name]!r} is not a host name")


def _check_rule(values: dict[str, Any], path: str) -> None:
    text = values["rule-data"]
    if "RULE" not in text or "ENDRULE" not in text:
        raise FieldError(join(path, "rule-data"), "is not a Byteman rule: write RULE <name> ... ENDRULE")


def _nonzero_offset(values: dict[str, Any], path: str) -> None:
    if values["time-offset"].nanoseconds == 0:
        raise FieldError(join(path, "time-offset"), "must not be 0 (nothing to shift)")


def _check_mode(values: dict[str, Any], path: str) -> None:
    if not set(str(values["privilege"])) <= set("01234567"):
        raise FieldError(join(path, "privilege"), f"{values['privilege']} is not a mode: use octal digits 0-7")


def _different(values: dict[str, Any], path: str) -> None:
    if values["source-file"] == values["dest-file"]:
        raise FieldError(join(path, "dest-file"), "must differ from source-file")


COMMON = (
    Field(
        "address",
        ListOf(HostPort(min_length=1, max_length=300, url=True, port_required=False), min_items=1, unique=True),
        label="chaosd addresses",
        help="Deprecated in Chaos Mesh (use the selector): the chaosd servers to call, e.g. http://10.0.0.5:31767.",
    ),
    Field(
        "uid",
        Str(pattern=r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            pattern_help="a UUID"),
        label="Experiment ID",
        help="Set by Chaos Mesh's webhook; accepted so that exported manifests import unchanged.",
    ),
    REMOTE_CLUSTER,
)


class _PhysicalKind(Kind):
    """Refuses `user_defined` with the reason, rather than as an unknown action."""

    def parse(self, spec_fields: dict[str, Any], path: str = "spec") -> FaultSpec:
        if spec_fields.get(self.action_field or "action") == USER_DEFINED:
            raise FieldError(join(path, self.action_field or "action"), USER_DEFINED_REFUSED)
        return super().parse(spec_fields, path)


KIND = _PhysicalKind(
    name="PhysicalMachineChaos",
    label="Host fault",
    help="Stress, disk, network, process, JVM, clock, Redis, Kafka, file and VM faults on hosts running "
    "the agent. Chaos Mesh's user_defined action (shell commands) is refused: Chaosplane never runs shell strings.",
    selector=SelectorKind.HOSTS,
    common_fields=COMMON,
    actions=ACTIONS,
)

