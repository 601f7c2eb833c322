KIND = "PhysicalMachineChaos"


def manifest(name: str, action: str, params: str, targets: str = "", extra: str = "") -> str:
    """A PhysicalMachineChaos manifest: `params` is the YAML of the action's sub-spec (one line or flow)."""
    targets = targets or "mode: one\n  selector:\n    labelSelectors: {env: test}"
    return f"""
apiVersion: chaos-mesh.org/v1alpha1
kind: PhysicalMachineChaos
metadata:
  name: {name}
  namespace: chaos-mesh
spec:
  action: {action}
  {targets}
  {action}: {params}
{extra}"""


ADDRESS = "mode: all\n  address: [http://172.16.112.130:31767, 10.0.0.7:31767]"
BY_NAME = "mode: fixed\n  value: \"2\"\n  selector:\n    physicalMachines:\n      chaos-mesh: [pm-1, pm-2, pm-3]"

VALID = [
    """
apiVersion: chaos-mesh.org/v1alpha1
kind: PhysicalMachineChaos
metadata:
  name: physical-stress-cpu
  namespace: chaos-mesh
spec:
  action: stress-cpu
  address:
    - 172.16.112.130:31767
  mode: one
  stress-cpu:
    workers: 3
    load: 10
  duration: 5m
""",
    manifest("stress-mem", "stress-mem", "{size: 50%, options: [--vm-keep]}", BY_NAME),
    manifest("stress-mem-bytes", "stress-mem", "{size: 256MB}"),
    manifest("disk-read", "disk-read-payload", "{size: 1GiB, path: /dev/sda, payload-process-num: 2}"),
    manifest("disk-write", "disk-write-payload", "{size: 512MB, payload-process-num: 1}", ADDRESS),
    manifest("disk-fill", "disk-fill", "{size: 10GiB, path: /var/tmp/fill, fill-by-fallocate: false}"),
    manifest("net-corrupt", "network-corrupt", "{device: eth0, percent: \"10\", correlation: \"25\"}"),
    manifest(
        "net-duplicate", "network-duplicate",
        "{device: ens33, percent: \"5\", ip-protocol: tcp, egress-port: \"80,8001:8010\", ip-address: 10.0.0.0/24}",
    ),
    manifest("net-loss", "network-loss", "{device: eth0, percent: \"50\", hostname: \"db.example.com,cache\"}"),
    manifest(
        "net-delay", "network-delay",
        "{device: eth0, latency: 100ms, jitter: 10ms, ip-protocol: tcp, accept-tcp-flags: \"SYN,ACK SYN,ACK\"}",
    ),
    manifest("net-partition", "network-partition", "{device: eth0, ip-address: 10.0.0.8, direction: to}"),
    manifest("net-dns", "network-dns", "{dns-server: 1.1.1.1, dns-ip: 10.0.0.9, dns-domain-name: api.example.com}"),
    manifest("net-bandwidth", "network-bandwidth", "{rate: 1mbps, limit: 20971520, buffer: 10000, device: eth0}"),
    manifest("net-flood", "network-flood", "{rate: 10mbps, ip-address: 10.0.0.10, port: \"5201\", duration: 30s}"),
    manifest("net-down", "network-down", "{device: eth1, duration: 1m}"),
    manifest("process-stop", "process", "{process: nginx, signal: 19}"),
    manifest("process-kill", "process", "{process: \"1234\", signal: 9}"),
    manifest(
        "jvm-exception", "jvm-exception",
        "{pid: 1234, class: com.example.Main, method: sayHello, exception: java.io.IOException(\"BOOM\")}",
    ),
    manifest("jvm-gc", "jvm-gc", "{pid: 1234, port: 9288}"),
    manifest("jvm-latency", "jvm-latency", "{pid: 1234, class: Main, method: sayHello, latency: 500}"),
    manifest("jvm-return", "jvm-return", "{pid: 1234, class: Main, method: getNumber, value: \"9999\"}"),
    manifest("jvm-stress", "jvm-stress", "{pid: 1234, cpu-count: 2}"),
    manifest(
        "jvm-rule-data", "jvm-rule-data",
        "{pid: 1234, rule-data: \"RULE t\\nCLASS Main\\nMETHOD run\\nAT ENTRY\\nIF true\\nDO throw new "
        "java.io.IOException()\\nENDRULE\"}",
    ),
    manifest(
        "jvm-mysql", "jvm-mysql",
        "{pid: 1234, mysqlConnectorVersion: \"8\", database: shop, sqlType: select, latency: 2000}",
    ),
    manifest("clock", "clock", "{pid: 1234, time-offset: -5m, clock-ids-slice: \"CLOCK_REALTIME,CLOCK_MONOTONIC\"}"),
    manifest(
        "redis-expiration", "redis-expiration", "{addr: 127.0.0.1:6379, expiration: 1m, key: session, option: XX}"
    ),
    manifest("redis-penetration", "redis-penetration", "{addr: redis.internal:6379, requestNum: 1000}"),
    manifest("redis-cachelimit", "redis-cacheLimit", "{addr: \"[::1]:6379\", percent: \"50\"}"),
    manifest("redis-restart", "redis-restart", "{addr: 127.0.0.1:26379, conf: /etc/redis/sentinel.conf}"),
    manifest("redis-stop", "redis-stop", "{addr: 127.0.0.1:26379, flushConfig: true}"),
    manifest(
        "kafka-fill", "kafka-fill",
        "{topic: orders, host: kafka-0.internal, port: 9092, messageSize: 1024, maxBytes: 1073741824}",
    ),
    manifest(
        "kafka-flood", "kafka-flood", "{topic: orders, host: 10.0.0.20, port: 9092, messageSize: 512, threads: 8}"
    ),
    manifest(
        "kafka-io", "kafka-io", "{topic: orders, configFile: /opt/kafka/config/server.properties, nonWritable: true}"
    ),
    manifest("file-create", "file-create", "{dir-name: /tmp/chaos-dir}"),
    manifest("file-modify", "file-modify", "{file-name: /etc/app.conf, privilege: 600}"),
    manifest("file-delete", "file-delete", "{file-name: /var/lib/app/state.db}"),
    manifest("file-rename", "file-rename", "{source-file: /etc/app.conf, dest-file: /etc/app.conf.bak}"),
    manifest("file-append", "file-append", "{file-name: /var/log/app.log, data: \"garbage\", count: 3}"),
    manifest(
        "file-replace", "file-replace",
        "{file-name: /etc/app.conf, origin-string: \"port=80\", dest-string: \"port=81\", line: 2}",
    ),
    manifest("vm", "vm", "{vm-name: guest-01}", extra="  remoteCluster: lab\n  duration: 2m"),
]

INVALID = [
    (manifest("no-config", "stress-cpu", "", extra=""), "spec.stress-cpu", "is required"),
    (manifest("cpu-load", "stress-cpu", "{load: 0, workers: 1}"), "spec.stress-cpu.load", "below the minimum of 1"),
    (manifest("mem-size", "stress-mem", "{size: lots}"), "spec.stress-mem.size", "is not a size"),
    (
        manifest("mem-shell", "stress-mem", "{size: 1GB, options: [\"--vm 1; rm -rf /\"]}"),
        "spec.stress-mem.options[0]", "no shell characters",
    ),
    (
        manifest("read-procs", "disk-read-payload", "{size: 1GB, payload-process-num: 256}"),
        "spec.disk-read-payload.payload-process-num", "above the maximum of 255",
    ),
    (
        manifest("write-path", "disk-write-payload", "{size: 1GB, path: tmp/x, payload-process-num: 1}"),
        "spec.disk-write-payload.path", "an absolute path",
    ),
    (manifest("fill-percent", "disk-fill", "{size: 50%}"), "spec.disk-fill.size", "a percentage is not allowed"),
    (manifest("corrupt-device", "network-corrupt", "{percent: \"10\"}"), "spec.network-corrupt.device", "is required"),
    (
        manifest("duplicate-port", "network-duplicate", "{device: eth0, percent: \"5\", egress-port: \"80\"}"),
        "spec.network-duplicate.ip-protocol", "must be tcp or udp when egress-port is given",
    ),
    (
        manifest("loss-zero", "network-loss", "{device: eth0, percent: \"0\"}"),
        "spec.network-loss.percent", "must be more than 0",
    ),
    (
        manifest("delay-flags", "network-delay", "{device: eth0, latency: 10ms, accept-tcp-flags: \"SYN SYN\"}"),
        "spec.network-delay.ip-protocol", "must be tcp when accept-tcp-flags is given",
    ),
    (
        manifest("delay-ip", "network-delay", "{device: eth0, latency: 10ms, ip-address: 10.0.0.300}"),
        "spec.network-delay.ip-address", "not an IP address or a CIDR",
    ),
    (
        manifest("partition-dir", "network-partition", "{device: eth0, ip-address: 10.0.0.8, direction: both}"),
        "spec.network-partition.direction", "is not one of: to, from",
    ),
    (
        manifest("partition-who", "network-partition", "{device: eth0, direction: to}"),
        "spec.network-partition.ip-address", "give at least one of: ip-address, hostname",
    ),
    (
        manifest("dns-pair", "network-dns", "{dns-domain-name: api.example.com}"),
        "spec.network-dns.dns-ip", "is required when dns-domain-name is given",
    ),
    (
        manifest("bandwidth-rate", "network-bandwidth", "{rate: fast, limit: 1, buffer: 1, device: eth0}"),
        "spec.network-bandwidth.rate", "is not a rate",
    ),
    (
        manifest("flood-port", "network-flood", "{rate: 1mbps, ip-address: 10.0.0.1, port: \"70000\", duration: 1s}"),
        "spec.network-flood.port", "above the maximum of 65535",
    ),
    (manifest("down-duration", "network-down", "{device: eth0}"), "spec.network-down.duration", "is required"),
    (manifest("signal", "process", "{process: nginx, signal: 65}"), "spec.process.signal", "above the maximum of 64"),
    (
        manifest("recover-cmd", "process", "{process: nginx, signal: 9, recoverCmd: \"systemctl start nginx\"}"),
        "spec.process.recoverCmd", "never runs shell strings",
    ),
    (
        manifest("jvm-exception", "jvm-exception", "{pid: 1, class: Main, method: run}"),
        "spec.jvm-exception.exception", "is required",
    ),
    (manifest("jvm-gc", "jvm-gc", "{port: 9288}"), "spec.jvm-gc.pid", "is required"),
    (
        manifest("jvm-latency", "jvm-latency", "{pid: 1, class: \"com..Main\", method: run, latency: 10}"),
        "spec.jvm-latency.class", "a fully qualified Java class name",
    ),
    (
        manifest("jvm-return", "jvm-return", "{pid: 1, class: Main, method: run}"),
        "spec.jvm-return.value", "is required",
    ),
    (
        manifest("jvm-stress", "jvm-stress", "{pid: 1, cpu-count: 1, mem-type: heap}"),
        "spec.jvm-stress.mem-type", "not both",
    ),
    (
        manifest("jvm-rule", "jvm-rule-data", "{pid: 1, rule-data: \"throw it\"}"),
        "spec.jvm-rule-data.rule-data", "not a Byteman rule",
    ),
    (
        manifest("jvm-mysql", "jvm-mysql", "{pid: 1, mysqlConnectorVersion: \"8\"}"),
        "spec.jvm-mysql.exception", "give at least one of: exception, latency",
    ),
    (
        manifest("clock-ids", "clock", "{pid: 1, time-offset: 1h, clock-ids-slice: CLOCK_WALL}"),
        "spec.clock.clock-ids-slice", "is not one of",
    ),
    (
        manifest("redis-password", "redis-expiration", "{addr: 127.0.0.1:6379, password: hunter2}"),
        "spec.redis-expiration.password", "inline password",
    ),
    (
        manifest("redis-requests", "redis-penetration", "{addr: 127.0.0.1:6379}"),
        "spec.redis-penetration.requestNum", "is required",
    ),
    (
        manifest("redis-limit", "redis-cacheLimit", "{addr: 127.0.0.1:6379, cacheSize: 1GB, percent: \"50\"}"),
        "spec.redis-cacheLimit.percent", "not both",
    ),
    (
        manifest("redis-restart", "redis-restart", "{addr: 127.0.0.1:26379}"),
        "spec.redis-restart.conf", "is required",
    ),
    (manifest("redis-stop", "redis-stop", "{addr: localhost}"), "spec.redis-stop.addr", "give a port"),
    (
        manifest(
            "kafka-reload", "kafka-fill",
            "{topic: t, host: k, port: 9092, messageSize: 1, maxBytes: 1, reloadCommand: \"kafka-server-start.sh\"}",
        ),
        "spec.kafka-fill.reloadCommand", "never runs shell strings",
    ),
    (
        manifest("kafka-threads", "kafka-flood", "{topic: t, host: k, port: 9092, messageSize: 1}"),
        "spec.kafka-flood.threads", "is required",
    ),
    (
        manifest("kafka-io", "kafka-io", "{topic: orders}"),
        "spec.kafka-io.nonReadable", "set at least one of nonReadable, nonWritable to true",
    ),
    (
        manifest("file-create", "file-create", "{file-name: /tmp/a, dir-name: /tmp/b}"),
        "spec.file-create.dir-name", "not both",
    ),
    (
        manifest("file-modify", "file-modify", "{file-name: /etc/x, privilege: 680}"),
        "spec.file-modify.privilege", "octal digits",
    ),
    (
        manifest("file-delete", "file-delete", "{}"),
        "spec.file-delete.file-name", "give at least one of: file-name, dir-name",
    ),
    (
        manifest("file-rename", "file-rename", "{source-file: /etc/x, dest-file: /etc/x}"),
        "spec.file-rename.dest-file", "must differ",
    ),
    (manifest("file-append", "file-append", "{file-name: /etc/x}"), "spec.file-append.data", "is required"),
    (
        manifest("file-replace", "file-replace", "{file-name: relative.conf, origin-string: a, dest-string: b}"),
        "spec.file-replace.file-name", "an absolute path",
    ),
    (manifest("vm", "vm", "{vm-name: \"guest; reboot\"}"), "spec.vm.vm-name", "a libvirt domain name"),
    (
        manifest("user-defined", "user_defined", "{attackCmd: \"touch /tmp/x\", recoverCmd: \"rm /tmp/x\"}"),
        "spec.action", "never runs shell strings",
    ),
    (manifest("other-config", "stress-cpu", "{load: 1, workers: 1}", extra="  stress-mem: {size: 1GB}"),
     "spec.stress-mem", "unknown field"),
    (
        manifest("bad-address", "stress-cpu", "{load: 1, workers: 1}", "mode: one\n  address: [\"ftp://h:1\"]"),
        "spec.address[0]", "the scheme must be http or https",
    ),
]
