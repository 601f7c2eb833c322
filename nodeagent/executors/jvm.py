"""JVMChaos and PhysicalMachineChaos jvm-* through Byteman, as Chaos Mesh and chaosd do it.

Inject:
1. Every field is checked and the rule script is generated (jvm_rules): rules named
   `chaosplane-<short id>-...`, from validated class and method names, literals and exception classes.
2. The target JVM is found (a process, a host PID, or the JVM in a container) and must be HotSpot.
3. Unless its Byteman listener already answers on the port, Byteman's agent is loaded into it with
   bminstall's options (`listener:true,address:127.0.0.1,port:P,boot:<byteman.jar>` and
   org.jboss.byteman.transform.all), through the attach API (jvm_attach). The jar is opened by the
   target JVM, so it must exist at the same path in the target's root: true on the host; a container
   without it is refused. A port held by another process is refused: rules must reach this JVM only.
4. Stress and GC name no method of the application: they also load the helper agent (jvm_helper)
   whose thread calls an empty method that their rules are injected into.
5. The script is submitted to the listener with bmsubmit's text protocol (LOAD ... ENDLOAD), spoken
   from Python in the JVM's network namespace, and the listing (LIST) is read back: a rule that
   failed to type-check is unloaded and the fault refused with Byteman's reason.

Recover needs only the order: it lists the rules loaded in the JVM and unloads, by name, every rule
whose name carries the fault's id (bmsubmit -u). Byteman's agent and listener stay in the JVM (a Java
agent cannot be unloaded), as with chaosd; they do nothing without rules. Unloading a stress rule
stops its threads and lets its memory go (the helper's uninstalled callback).

Fields: JVMChaos's (class, method, latency, value, exception, cpuCount, memType, ruleData, port, pid as
the container sees it) and PhysicalMachineChaos's jvm-* (the same, with cpu-count, mem-type, rule-data,
and pid as the host sees it). JVMChaos's `name` (a rule name) is not used: rules are named after the
fault id, which is what lets recovery find them.

mysql: a latency on every statement of MySQL Connector/J 5 or 8 (its statement-executing method) is
done; database/table/sqlType filters and thrown exceptions need Chaos Mesh's SQL-parsing helper, and
are refused with that reason.
"""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nodeagent.orders import FaultOrder, Refused

from . import jvm_attach, jvm_helper, jvm_rules, namespaces, validate
from .network import params

#: Where Byteman's agent jar is looked for, in order ($BYTEMAN_HOME/lib/byteman.jar first).
BYTEMAN_JARS = ("/usr/share/java/byteman.jar", "/usr/share/byteman/lib/byteman.jar", "/opt/byteman/lib/byteman.jar",
                "/usr/local/byteman/lib/byteman.jar")
#: Where the stress/GC helper jar is built (world-readable: the target JVM opens it).
HELPER_DIR = "/var/cache/chaosplane-agent/jvm"
DEFAULT_PORT = {"JVMChaos": 9277, "PhysicalMachineChaos": 9288}
LISTENER_TIMEOUT = 15.0
CHECK_AFTER = 0.3  # seconds after loading: a rule on a busy method has type-checked by then
TRIGGERED_WITHIN = 3.0  # stress and GC rules fire from the trigger thread within this

#: Connector/J's method that runs every statement, per major version (what Chaos Mesh's rules hook).
MYSQL_METHODS = {"5": ("com.mysql.jdbc.MysqlIO", "sqlQueryDirect"), "8": ("com.mysql.cj.NativeSession", "execSQL")}

_attach_lock = threading.Lock()  # two faults on one JVM at once: one loads the agent, the other finds it


def byteman_jar() -> str | None:
    home = os.environ.get("BYTEMAN_HOME")
    for path in ((f"{home}/lib/byteman.jar",) if home else ()) + BYTEMAN_JARS:
        if os.path.isfile(path):
            return path
    return None


# What to load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    script: str
    names: list[str]
    what: str
    helper: bool = False  # needs the trigger thread (stress, GC)


def _action(order: FaultOrder) -> str:
    action = order.action.removeprefix("jvm-") if order.kind == "PhysicalMachineChaos" else order.action
    return {"rule-data": "ruleData"}.get(action, action)


def plan(order: FaultOrder) -> Plan:
    """The rule script of the order, every field checked; nothing is touched."""
    p = params(order)
    action = _action(order)
    base = jvm_rules.prefix(order.fault_id)
    if action in ("latency", "return", "exception"):
        cls, method = jvm_rules.java_class(p.get("class")), jvm_rules.java_method(p.get("method"))
        if action == "latency":
            ms = jvm_rules.latency_ms(p.get("latency"))
            do, what = f"delay({ms})", f"{ms} ms latency in {cls}.{method}"
        elif action == "return":
            value = jvm_rules.return_value(p.get("value"))
            do, what = f"return {value}", f"{cls}.{method} returns {value}"
        else:
            thrown = jvm_rules.exception(p.get("exception"))
            do, what = f"throw {thrown}", f"{cls}.{method} throws {thrown}"
        name = f"{base}{action}"
        return Plan(jvm_rules.rule(name, cls, method, do), [name], what)
    if action == "stress":
        cpu, mem = p.get("cpuCount", p.get("cpu-count")), p.get("memType", p.get("mem-type"))
        if (cpu is None) == (mem is None):
            raise Refused("stress: give cpuCount or memType (one of them)")
        name = f"{base}stress"
        if cpu is not None:
            count = validate.integer(cpu, "cpuCount", 1, 1024)
            return Plan(jvm_rules.trigger_rule(name, f"cpu({count})"), [name],
                        f"{count} busy thread(s) in the JVM", helper=True)
        kind = validate.choice(mem, "memType", ("heap", "stack"))
        what = "heap filled to 95% of its maximum" if kind == "heap" else "up to 256 threads holding 1 MiB stacks"
        return Plan(jvm_rules.trigger_rule(name, f'memory("{kind}")'), [name], what, helper=True)
    if action == "gc":
        name = f"{base}gc"
        return Plan(jvm_rules.trigger_rule(name, "gcOnce()"), [name], "System.gc() once", helper=True)
    if action == "ruleData":
        script, names = jvm_rules.rename_rule_data(p.get("ruleData", p.get("rule-data")), order.fault_id)
        return Plan(script, names, f"{len(names)} Byteman rule(s) given as ruleData")
    if action == "mysql":
        version = validate.choice(str(p.get("mysqlConnectorVersion")), "mysqlConnectorVersion", ("5", "8"))
        filters = [f for f in ("database", "table", "sqlType") if p.get(f) is not None]
        if filters or p.get("exception") is not None:
            raise Refused(f"mysql: {', '.join(filters + (['exception'] if p.get('exception') is not None else []))} "
                          "need Chaos Mesh's SQL-parsing Byteman helper, which this agent does not have; a latency "
                          "on every statement is supported")
        ms = jvm_rules.latency_ms(p.get("latency"))
        cls, method = MYSQL_METHODS[version]
        name = f"{base}mysql"
        return Plan(jvm_rules.rule(name, cls, method, f"delay({ms})"), [name],
                    f"{ms} ms latency on every MySQL Connector/J {version} statement ({cls}.{method})")
    raise Refused(f"{order.kind} {order.action} is not a JVM action")


def port_of(order: FaultOrder) -> int:
    value = params(order).get("port")
    return validate.port(DEFAULT_PORT.get(order.kind, 9277) if value is None else value)


# Which JVM ---------------------------------------------------------------------------------------


def _pid_ns(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        raise Refused(f"process {pid} does not exist") from None


def _in_pid_ns(ns: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino == ns:
                    found.append(int(entry))
            except OSError:
                continue
    return sorted(found)


def jvm_beside(main: int, given: object) -> int:
    """The JVM among the processes of `main`'s PID namespace (a container's): the one whose PID in
    there is `given`, else `main` itself when it is a JVM, else the only JVM in there."""
    members = _in_pid_ns(_pid_ns(main))
    if given is not None:
        inner = validate.integer(int(given) if isinstance(given, str) and given.isdigit() else given, "pid", 1,
                                 4194304)
        found = [pid for pid in members if jvm_attach.ns_pid(pid) == inner]
        if not found:
            raise Refused(f"the container has no process {inner}")
        return found[0]
    if jvm_attach.is_hotspot(main):
        return main
    jvms = [pid for pid in members if jvm_attach.is_hotspot(pid)]
    if len(jvms) != 1:
        raise Refused(f"the container runs {len(jvms)} JVMs: give pid (as the container sees it)")
    return jvms[0]


def target_pid(order: FaultOrder) -> int:
    """The host PID of the JVM the order means: in a container, `pid` is as the container sees it (default:
    its JVM); for a process target, that process; on a host, `pid` is required."""
    given = params(order).get("pid")
    target = order.target
    if target.kind == "container":
        main = namespaces.resolve(target).pid
        assert main is not None
        return jvm_beside(main, given)
    if target.kind == "process":
        pid = namespaces.resolve(target).pid
        assert pid is not None
        if given is not None and validate.pid(given) != pid:
            raise Refused(f"pid {given} is not the target process {pid}")
        return pid
    if given is None:
        raise Refused("pid: the Java process to attach to is required")
    pid = validate.pid(given)
    if not os.path.exists(f"/proc/{pid}"):
        raise Refused(f"process {pid} does not exist")
    return pid


# The Byteman listener ----------------------------------------------------------------------------


def _listening_inodes(pid: int, port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, StopIteration):
            continue
    return inodes


def listener(pid: int, port: int) -> str:
    """'ours' when the JVM itself listens on the port, 'other' when another process does, 'none'."""
    inodes = _listening_inodes(pid, port)
    if not inodes:
        return "none"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return "ours"
    except OSError:
        return "none"
    return "other"


def _in_netns_of(pid: int, work: Callable[[], str]) -> str:
    mine, theirs = os.stat("/proc/self/ns/net"), os.stat(namespaces.netns_of_pid(pid))
    same = (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    return work() if same else namespaces.run_in(f"/proc/{pid}/ns/net", work)


def request(pid: int, port: int, text: str) -> str:
    """One request to the agent listener (bmsubmit's protocol); the answer up to its closing OK line."""

    def talk() -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=LISTENER_TIMEOUT) as s:
            s.sendall(text.encode())
            buffered = b""
            lines: list[str] = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise Refused(f"the Byteman listener of JVM {pid} closed the connection: {''.join(lines)[:200]}")
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    if line == "OK":
                        return "\n".join(lines)
                    lines.append(line)

    try:
        return _in_netns_of(pid, talk)
    except OSError as error:
        raise Refused(f"the Byteman listener of JVM {pid} on port {port} did not answer: {error}") from None


def listing(pid: int, port: int) -> dict[str, jvm_rules.Listed]:
    return jvm_rules.parse_listing(request(pid, port, "LIST\n"))


def unload(pid: int, port: int, names: list[str]) -> str:
    if not names:
        return ""
    return request(pid, port, f"DELETE\nSCRIPT chaosplane\n{jvm_rules.delete_script(names)}ENDSCRIPT\nENDDELETE\n")


def _agent_options(jar: str, port: int) -> str:
    # bminstall -b -Dorg.jboss.byteman.transform.all -h 127.0.0.1 -p PORT: what Install passes to loadAgent.
    return f"listener:true,address:127.0.0.1,port:{port},boot:{jar},prop:org.jboss.byteman.transform.all"


def ensure_agent(pid: int, port: int, jar: str) -> str:
    """Byteman's listener in the JVM on the port, loading the agent when needed; says which it was."""
    with _attach_lock:
        return _ensure_agent(pid, port, jar)


def _ensure_agent(pid: int, port: int, jar: str) -> str:
    state = listener(pid, port)
    if state == "other":
        raise Refused(f"port {port} is taken by another process in the JVM's network namespace: give another port")
    if state == "ours":
        version = request(pid, port, "VERSION\n").strip()
        if not version or not version.replace(".", "").replace("-", "").isalnum():
            raise Refused(f"JVM {pid} listens on port {port}, but not as a Byteman agent")
        return f"Byteman {version} already in JVM {pid}"
    if not jvm_attach.jar_visible(pid, jar):
        raise Refused(f"{jar} does not exist inside the target's filesystem (a container?): Byteman's agent jar "
                      "must be at the same path there (e.g. install libbyteman-java in the image)")
    try:
        jvm_attach.load_agent(pid, jar, _agent_options(jar, port))
    except Refused:
        if listener(pid, port) != "ours":  # another agent process may have loaded it just now
            raise
    deadline = time.monotonic() + 5
    while listener(pid, port) != "ours":
        if time.monotonic() > deadline:
            raise Refused(f"the Byteman agent in JVM {pid} did not open port {port}: was Byteman already loaded "
                          "with another port? Use that port")
        time.sleep(0.05)
    return f"Byteman loaded into JVM {pid}"


def _trigger_running(pid: int) -> bool:
    comm = jvm_helper.TRIGGER_THREAD[:15]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                if f.read().strip() == comm:
                    return True
        except OSError:
            continue
    return False


def ensure_trigger(pid: int, jar: str) -> None:
    """The helper's trigger thread in the JVM (its agent is loaded once; loading it again is harmless)."""
    helper = jvm_helper.build(HELPER_DIR, jar)
    with _attach_lock:
        if _trigger_running(pid):
            return
        if not jvm_attach.jar_visible(pid, helper):
            raise Refused(f"{helper} does not exist inside the target's filesystem (a container?): stress and GC "
                          "need the helper jar at the same path there")
        jvm_attach.load_agent(pid, helper, "")


# Inject / recover --------------------------------------------------------------------------------


def _failures(pid: int, port: int, names: list[str]) -> dict[str, jvm_rules.Listed]:
    found = listing(pid, port)
    missing = [n for n in names if n not in found]
    if missing:
        raise Refused(f"Byteman did not keep rule(s) {', '.join(missing)}")
    return {n: found[n] for n in names}


def inject(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    the_plan = plan(order)
    port = port_of(order)
    jar = byteman_jar()
    if jar is None:
        raise Refused("Byteman is not installed on this host (Debian: apt-get install libbyteman-java; or set "
                      "BYTEMAN_HOME)")
    pid = target_pid(order)
    jvm_attach.check_jvm(pid)
    agent = ensure_agent(pid, port, jar)
    if the_plan.helper:
        ensure_trigger(pid, jar)
    answer = request(pid, port, f"LOAD\nSCRIPT chaosplane-{validate.short_id(order.fault_id)}\n{the_plan.script}"
                                "ENDSCRIPT\nENDLOAD\n")
    if any(line.startswith(("ERROR", "EXCEPTION")) for line in answer.splitlines()):
        unload(pid, port, the_plan.names)
        raise Refused(f"Byteman refused the rules: {' '.join(answer.split())[:400]}")
    try:
        rules = _checked(pid, port, the_plan)
    except BaseException:
        unload(pid, port, the_plan.names)  # refused after all: none of its rules stays
        raise
    idle = [r.name for r in rules.values() if not r.injected]
    note = (f"; {', '.join(idle)} is in no loaded method yet: it applies when its class loads (check the class "
            "and method names)" if idle else "")
    return f"{the_plan.what} (JVM {pid}, port {port}; {agent}){note}"


def _checked(pid: int, port: int, the_plan: Plan) -> dict[str, jvm_rules.Listed]:
    """The rules as listed once they are known good: refused when one failed to parse or type-check
    (on a busy method that shows within CHECK_AFTER), or when a stress/GC rule did not fire."""
    deadline = time.monotonic() + (TRIGGERED_WITHIN if the_plan.helper else CHECK_AFTER)
    while True:
        rules = _failures(pid, port, the_plan.names)
        failed = [r for r in rules.values() if r.failure]
        if failed:
            raise Refused(f"Byteman could not apply rule {failed[0].name}: {failed[0].failure}")
        if all(r.compiled for r in rules.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if the_plan.helper and not all(r.compiled for r in rules.values()):
        raise Refused(f"the helper's trigger thread did not fire the rule within {TRIGGERED_WITHIN:.0f}s")
    return rules


def recover(order: FaultOrder) -> None:
    """Unloads every rule of the fault still loaded in the JVM; nothing to do when the JVM or its
    listener is gone."""
    mine = jvm_rules.prefix(order.fault_id)
    try:
        port = port_of(order)
        pid = target_pid(order)
    except Refused:
        return  # the JVM or its container is gone, or the order never named one: no rule of ours is loaded
    if listener(pid, port) != "ours":
        return
    names = [name for name in listing(pid, port) if name.startswith(mine)]
    unload(pid, port, names)
    left = [name for name in listing(pid, port) if name.startswith(mine)]
    if left:
        raise RuntimeError(f"Byteman still has rule(s) {', '.join(left)} loaded in JVM {pid}")


def capability() -> tuple[str, bool, str]:
    """"byteman": Byteman's jar is here and an attach works: a throwaway JVM gets the agent, and its
    listener answers."""
    jar = byteman_jar()
    if jar is None:
        return "byteman", False, "no byteman.jar (Debian: libbyteman-java)"
    java = "/usr/bin/java" if os.path.exists("/usr/bin/java") else None
    if java is None:
        return "byteman", False, f"{jar}, but no java to try an attach with"
    try:
        helper = jvm_helper.build(HELPER_DIR, jar)
    except Refused as refused:
        return "byteman", True, f"{jar}; stress and gc refused: {refused}"
    probe = subprocess.Popen([java, "-XX:-UsePerfData", "-XX:TieredStopAtLevel=1", "-Xmx32m", "-cp", helper,
                              jvm_helper.IDLE_CLASS], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
    try:
        deadline = time.monotonic() + 10
        while not jvm_attach.is_hotspot(probe.pid) or not _catches_quit(probe.pid):
            if probe.poll() is not None or time.monotonic() > deadline:
                return "byteman", False, "a probe JVM did not start"
            time.sleep(0.02)
        with socket.socket() as s:  # a free port on loopback for the probe's listener
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        ensure_agent(probe.pid, free, jar)
        version = request(probe.pid, free, "VERSION\n").strip()
        return "byteman", True, f"Byteman {version} ({jar}) attached to a probe JVM; stress/gc helper {helper}"
    except Refused as refused:
        return "byteman", False, f"attach failed: {refused}"
    finally:
        probe.terminate()  # a JVM that exits removes its attach socket from /tmp; a killed one leaves it
        try:
            probe.wait(5)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait(5)


def _catches_quit(pid: int) -> bool:
    try:
        jvm_attach.check_jvm(pid)
        return True
    except Refused:
        return False


_JVM_ACTIONS = ("latency", "return", "exception", "stress", "gc", "ruleData", "mysql")
_PMC_ACTIONS = ("jvm-latency", "jvm-return", "jvm-exception", "jvm-stress", "jvm-gc", "jvm-rule-data", "jvm-mysql")

#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    **{("JVMChaos", a): (inject, recover) for a in _JVM_ACTIONS},
    **{("PhysicalMachineChaos", a): (inject, recover) for a in _PMC_ACTIONS},
}
