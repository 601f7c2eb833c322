"""JVM faults for real: a small Java program (tests/nodeagent/jvm/ChaosTarget.java, compiled here) runs
in a network namespace of its own and calls a few methods every 50 ms, printing what they returned or
threw and how long they took; Byteman's agent is attached to it and rules are loaded through its
listener. One JVM serves the whole module (a JVM starts slowly); after every test no rule of ours may be
loaded in it (the listener's LIST, and Byteman's own Submit client once) and no stress thread may run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodeagent.executors import inject, jvm, jvm_attach, jvm_helper, jvm_rules, recover, validate
from nodeagent.executors.namespaces import run, run_in
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import fault_id, needs_root

ROOT = Path(__file__).resolve().parents[2]
SOURCES = Path(__file__).parent / "jvm"
SUBMIT_JAR = "/usr/share/java/byteman-submit.jar"
JAVA, JAVAC = shutil.which("java"), shutil.which("javac")

needs_byteman = pytest.mark.skipif(
    not (JAVA and JAVAC and jvm.byteman_jar() and os.path.exists(SUBMIT_JAR)),
    reason="needs java, javac and Byteman (apt-get install openjdk-17-jdk-headless libbyteman-java)",
)
pytestmark = [needs_root, needs_byteman]


@dataclass
class Jvm:
    """The running ChaosTarget: its PID, the Byteman port the tests use, and the lines it printed."""

    process: subprocess.Popen[str]  # unshare, whose child is the JVM
    pid: int  # the JVM, as the host sees it
    netns: str
    port: int
    gc_log: Path
    classes: Path
    lines: list[tuple[float, str]] = field(default_factory=list)

    def rounds(self, count: int, after: float | None = None, timeout: float = 10.0) -> list[dict[str, str]]:
        """The next `count` rounds printed after `after` (default: now), as key=value dicts."""
        after = time.monotonic() if after is None else after
        deadline = time.monotonic() + timeout
        while True:
            got = [line for at, line in list(self.lines) if at > after and line.startswith("round=")]
            if len(got) >= count:
                return [dict(item.split("=", 1) for item in line.split(" ")) for line in got[:count]]
            assert self.process.poll() is None, f"the JVM died: {self.lines[-5:]}"
            assert time.monotonic() < deadline, f"only {len(got)} rounds in {timeout}s: {self.lines[-3:]}"
            time.sleep(0.02)

    def ours(self) -> list[str]:
        return [name for name in jvm.listing(self.pid, self.port) if name.startswith("chaosplane-")]

    def threads(self, prefix: str = "chaosplane-") -> list[str]:
        names = []
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{task}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                continue
        return [n for n in names if n.startswith(prefix) and n != jvm_helper.TRIGGER_THREAD[:15]]

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def system_gcs(self) -> int:
        return self.gc_log.read_text().count("Pause Full (System.gc())") if self.gc_log.exists() else 0


def _free_port(netns: str) -> int:
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return run_in(f"/run/netns/{netns}", pick)


def _compile(into: Path) -> Path:
    classes = into / "classes"
    subprocess.run([JAVAC, "-d", str(classes), str(SOURCES / "ChaosTarget.java"), str(SOURCES / "NativeSession.java")],
                   check=True, capture_output=True, timeout=120)
    return classes


@pytest.fixture(scope="module")
def helper_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stress/GC helper jar is built into the test's own directory, not the host's cache."""
    directory = str(tmp_path_factory.mktemp("jvm-helper"))
    saved, jvm.HELPER_DIR = jvm.HELPER_DIR, directory
    yield directory
    jvm.HELPER_DIR = saved


def _child_of(parent: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                children = f.read().split()
        except OSError:
            children = []
        if children and jvm_attach.is_hotspot(int(children[0])):
            return int(children[0])
        assert time.monotonic() < deadline, "the JVM did not start"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, helper_dir: str) -> Iterator[Jvm]:
    """ChaosTarget as in a container: its own network, PID (it is PID 1 there) and mount namespaces."""
    work = tmp_path_factory.mktemp("jvm")
    classes = _compile(work)
    netns = f"cpjvm-{os.getpid()}"
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    gc_log = work / "gc.log"
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, "unshare", "--pid", "--fork", "--mount-proc", JAVA, "-Xmx128m",
         "-XX:-UsePerfData", f"-Xlog:gc:file={gc_log}", "-cp", str(classes), "chaostest.ChaosTarget"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work,
        start_new_session=True)
    java = _child_of(process.pid)
    the_jvm = Jvm(process, java, netns, _free_port(netns), gc_log, classes)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            the_jvm.lines.append((time.monotonic(), line.rstrip("\n")))

    threading.Thread(target=read, daemon=True).start()
    try:
        assert jvm_attach.ns_pid(java) == 1
        the_jvm.rounds(2, after=0.0, timeout=30)
        yield the_jvm
    finally:
        os.kill(java, signal.SIGTERM)  # exits cleanly: the JVM removes its attach socket
        code = process.wait(10)
        run(["ip", "netns", "del", netns], check=False)
        problems = []
        if code not in (143, -signal.SIGTERM):
            problems.append(f"the JVM exited {code}")
        for path in ("/tmp/.java_pid1", "/tmp/.attach_pid1", f"{work}/.attach_pid1"):
            if os.path.exists(path):
                problems.append(path)
                os.unlink(path)
        if netns in run(["ip", "netns", "list"]).stdout:
            problems.append(f"namespace {netns}")
        assert not problems, f"left behind: {problems}"


@pytest.fixture(autouse=True)
def nothing_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that uses the JVM: no rule of ours loaded, no stress thread running."""
    yield
    if "target" not in request.fixturenames:
        return
    the_jvm: Jvm = request.getfixturevalue("target")
    assert the_jvm.process.poll() is None, "the JVM did not survive the test"
    if jvm.listener(the_jvm.pid, the_jvm.port) == "ours":
        assert the_jvm.ours() == [], "rules left loaded"
    deadline = time.monotonic() + 3
    while the_jvm.threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert the_jvm.threads() == [], "stress threads left running"


def _pmc(the_jvm: Jvm, action: str, **fields: object) -> FaultOrder:
    """PhysicalMachineChaos jvm-<action> on the host, naming the JVM by PID (as chaosd)."""
    return FaultOrder(fault_id(), "PhysicalMachineChaos", f"jvm-{action}",
                      {f"jvm-{action}": {"pid": the_jvm.pid, "port": the_jvm.port, **fields}})


def _jvmchaos(the_jvm: Jvm, action: str, **fields: object) -> FaultOrder:
    """JVMChaos <action> aimed at the JVM as a process target."""
    return FaultOrder(fault_id(), "JVMChaos", action, {"port": the_jvm.port, **fields},
                      Target(kind="process", pid=the_jvm.pid))


def _submit_list(the_jvm: Jvm) -> str:
    """Byteman's own client (bmsubmit -l), from inside the JVM's namespace."""
    return run(["ip", "netns", "exec", the_jvm.netns, JAVA, "-cp", SUBMIT_JAR,
                "org.jboss.byteman.agent.submit.Submit", "-p", str(the_jvm.port), "-l"]).stdout


def test_latency_is_added_then_removed_and_the_jvm_keeps_running(target: Jvm) -> None:
    order = _pmc(target, "latency", **{"class": "chaostest.ChaosTarget$Service", "method": "greet", "latency": 300})
    print(inject(order))
    try:
        slow = target.rounds(4)[1:]  # the first may have started before the rule
        print("greet during the fault (us):", [r["greet_us"] for r in slow])
        assert all(240_000 <= int(r["greet_us"]) <= 360_000 for r in slow), slow
        short = validate.short_id(order.fault_id)
        assert f"RULE chaosplane-{short}-latency" in _submit_list(target)
    finally:
        recover(order)
    fast = target.rounds(4)[1:]
    print("greet after recovery (us):", [r["greet_us"] for r in fast])
    assert all(int(r["greet_us"]) < 50_000 for r in fast), fast
    assert int(fast[-1]["round"]) > int(slow[-1]["round"]), "the program goes on"
    listed = _submit_list(target)
    assert "chaosplane-" not in listed, listed
    recover(order)  # twice: nothing left to do


def test_return_value_changes_and_comes_back(target: Jvm) -> None:
    number = _jvmchaos(target, "return", **{"class": "chaostest.ChaosTarget$Service", "method": "number",
                                           "value": "4242"})
    text = _jvmchaos(target, "return", **{"class": "chaostest.ChaosTarget$Service", "method": "greet",
                                         "value": '"chaos"'})
    print(inject(number))
    print(inject(text))
    try:
        during = target.rounds(3)[1:]
        assert [r["number"] for r in during] == ["4242", "4242"], during
        assert [r["greet"] for r in during] == ["chaos", "chaos"], during
    finally:
        recover(number)
    after_one = target.rounds(3)[1:]
    assert [r["number"] for r in after_one] == ["7", "7"], "the other fault's rule went too"
    assert [r["greet"] for r in after_one] == ["chaos", "chaos"], "one recovery took another fault's rule"
    recover(text)
    after = target.rounds(3)[1:]
    assert all(r["greet"].startswith("hello-") for r in after), after


def test_exception_is_thrown_then_not(target: Jvm) -> None:
    order = _jvmchaos(target, "exception", **{"class": "chaostest.ChaosTarget$Service", "method": "greet",
                                             "exception": 'java.io.IOException("BOOM")'})
    print(inject(order))
    try:
        during = target.rounds(3)[1:]
        assert all(r["greet"] == "threw:java.io.IOException:BOOM" for r in during), during
    finally:
        recover(order)
    assert all(r["greet"].startswith("hello-") for r in target.rounds(3)[1:])


def test_an_unchecked_exception_where_none_is_declared(target: Jvm) -> None:
    order = _pmc(target, "exception", **{"class": "chaostest.ChaosTarget$Service", "method": "number",
                                        "exception": "java.lang.IllegalStateException"})
    print(inject(order))
    try:
        assert all(r["number"] == "threw:java.lang.IllegalStateException" for r in target.rounds(3)[1:])
    finally:
        recover(order)
    assert all(r["number"] == "7" for r in target.rounds(3)[1:])


def test_a_rule_byteman_cannot_apply_is_refused_and_unloaded(target: Jvm) -> None:
    # number() declares no IOException: Byteman's type check refuses to throw it there.
    order = _pmc(target, "exception", **{"class": "chaostest.ChaosTarget$Service", "method": "number",
                                        "exception": 'java.io.IOException("x")'})
    with pytest.raises(Refused, match="not declared by trigger method"):
        inject(order)
    assert target.ours() == []
    recover(order)  # half-injected: still fine


def test_a_rule_that_does_not_parse_is_refused_and_unloaded(target: Jvm) -> None:
    order = _pmc(target, "rule-data", **{"rule-data": "RULE broken\nCLASS chaostest.ChaosTarget$Service\n"
                                                      "METHOD greet\nAT ENTRY\nIF true\nDO return ((\nENDRULE\n"})
    with pytest.raises(Refused, match="ParseException"):
        inject(order)
    assert target.ours() == []


def test_gc_runs_once(target: Jvm) -> None:
    before = target.system_gcs()
    order = _jvmchaos(target, "gc")
    print(inject(order))
    try:
        deadline = time.monotonic() + 3
        while target.system_gcs() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # the trigger fires 5 more times: still one GC
        assert target.system_gcs() - before == 1, target.gc_log.read_text()[-500:]
    finally:
        recover(order)


def test_cpu_stress_burns_a_core_until_recovered(target: Jvm) -> None:
    order = _pmc(target, "stress", **{"cpu-count": 2})
    idle_start, idle_at = target.cpu_seconds(), time.monotonic()
    time.sleep(0.5)
    idle = (target.cpu_seconds() - idle_start) / (time.monotonic() - idle_at)
    print(inject(order))
    try:
        time.sleep(0.3)
        start, at = target.cpu_seconds(), time.monotonic()
        time.sleep(1.5)
        busy = (target.cpu_seconds() - start) / (time.monotonic() - at)
        assert len(target.threads()) == 2
    finally:
        recover(order)
    time.sleep(0.3)
    start, at = target.cpu_seconds(), time.monotonic()
    time.sleep(1)
    after = (target.cpu_seconds() - start) / (time.monotonic() - at)
    print(f"JVM CPU: {idle:.2f} idle, {busy:.2f} under stress, {after:.2f} after recovery")
    # Two spinning threads on this 2-core host: 2.0 when idle; other tests running beside may take most of it.
    assert busy >= 0.3 and after <= idle + 0.15, (idle, busy, after)


def test_heap_stress_fills_the_heap_and_lets_it_go(target: Jvm) -> None:
    order = _jvmchaos(target, "stress", memType="heap")
    print(inject(order))
    try:
        deadline = time.monotonic() + 8
        while int(target.rounds(1)[0]["heap"]) < 96 * 2**20:
            assert time.monotonic() < deadline, "the heap did not fill"
        full = int(target.rounds(1)[0]["heap"])
    finally:
        recover(order)
    emptied = int(target.rounds(2)[1]["heap"])
    print(f"heap: {full / 2**20:.0f} MiB under stress (-Xmx128m), {emptied / 2**20:.0f} MiB after recovery")
    assert emptied < 40 * 2**20


def test_stack_stress_holds_threads_until_recovered(target: Jvm) -> None:
    def threads() -> int:
        with open(f"/proc/{target.pid}/status") as f:
            return int(next(line for line in f if line.startswith("Threads:")).split()[1])

    before = threads()
    order = _jvmchaos(target, "stress", memType="stack")
    print(inject(order))
    try:
        deadline = time.monotonic() + 8
        while threads() < before + 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = threads()
        target.rounds(2)  # the program still runs
    finally:
        recover(order)
    deadline = time.monotonic() + 5
    while threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"threads: {before} before, {held} under stack stress, {threads()} after recovery")
    assert held >= before + 200 and threads() <= before


def test_rule_data_rules_are_renamed_loaded_and_unloaded(target: Jvm) -> None:
    rules = (
        "# two rules, named by the user\n"
        "RULE answer\nCLASS chaostest.ChaosTarget$Service\nMETHOD number\nAT ENTRY\nIF true\nDO return 99\nENDRULE\n\n"
        "RULE slow down\nCLASS chaostest.ChaosTarget$Service\nMETHOD greet\nAT ENTRY\nIF true\n"
        "DO delay(200)\nENDRULE\n"
    )
    order = _pmc(target, "rule-data", **{"rule-data": rules})
    print(inject(order))
    try:
        short = validate.short_id(order.fault_id)
        assert sorted(target.ours()) == [f"chaosplane-{short}-rule-1", f"chaosplane-{short}-rule-2"]
        during = target.rounds(3)[1:]
        assert all(r["number"] == "99" and int(r["greet_us"]) >= 160_000 for r in during), during
    finally:
        recover(order)
    assert all(r["number"] == "7" for r in target.rounds(3)[1:])


def test_mysql_latency_on_every_statement(target: Jvm) -> None:
    order = _jvmchaos(target, "mysql", mysqlConnectorVersion="8", latency=250)
    print(inject(order))
    try:
        assert all(200_000 <= int(r["sql_us"]) <= 300_000 for r in target.rounds(3)[1:])
    finally:
        recover(order)
    assert all(int(r["sql_us"]) < 50_000 for r in target.rounds(3)[1:])
    with pytest.raises(Refused, match="SQL-parsing"):
        inject(_jvmchaos(target, "mysql", mysqlConnectorVersion="8", latency=250, table="t1"))


def test_agent_killed_mid_fault_then_recovered_by_a_fresh_process(target: Jvm) -> None:
    order = _pmc(target, "latency", **{"class": "chaostest.ChaosTarget$Service", "method": "greet", "latency": 300})
    code = ("import sys, time\n"
            "from nodeagent.orders import FaultOrder\n"
            "from nodeagent.executors import inject\n"
            "print(inject(FaultOrder.from_json(sys.argv[1])), flush=True)\n"
            "time.sleep(60)\n")
    agent = subprocess.Popen([sys.executable, "-c", code, order.to_json()], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = agent.stdout.readline() if agent.stdout else b""
        assert b"300 ms latency" in line, (line, agent.stderr.read() if agent.poll() is not None and agent.stderr
                                            else b"")
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(5)
    assert all(int(r["greet_us"]) >= 240_000 for r in target.rounds(3)[1:]), "the fault holds without its agent"
    recover(FaultOrder.from_json(order.to_json()))
    assert all(int(r["greet_us"]) < 50_000 for r in target.rounds(3)[1:])
    assert "chaosplane-" not in _submit_list(target)


def test_bad_values_are_refused_before_anything_is_loaded(target: Jvm) -> None:
    cls = "chaostest.ChaosTarget$Service"
    bad = [
        ("latency", {"class": "chaostest.Main;System.exit(1)", "method": "greet", "latency": 100}, "class"),
        ("latency", {"class": cls, "method": "greet\nENDRULE", "latency": 100}, "method"),
        ("latency", {"class": cls, "method": "greet", "latency": 0}, "latency"),
        ("return", {"class": cls, "method": "number", "value": "1; System.exit(1)"}, "not a Java literal"),
        ("return", {"class": cls, "method": "greet", "value": '"a" + System.getenv("HOME")'}, "not a Java literal"),
        ("return", {"class": cls, "method": "greet", "value": '"line\nENDRULE"'}, "not a Java literal"),
        ("exception", {"class": cls, "method": "greet", "exception": 'java.io.IOException("x"); System.exit(1)'},
         "exception"),
        ("exception", {"class": cls, "method": "greet", "exception": 'java.io.IOException("a\\" + x + \\"")'},
         "exception"),
        ("rule-data", {"rule-data": "RULE x\nCLASS A\nMETHOD b\nDO return 1\nENDSCRIPT\nENDLOAD\nDELETEALL\n"},
         "not allowed"),
        ("rule-data", {"rule-data": "RULE x\nCLASS A\nMETHOD b\nDO return 1\n"}, "no ENDRULE"),
        ("rule-data", {"rule-data": "DELETEALL\nRULE x\nCLASS A\nMETHOD b\nENDRULE\n"}, "outside RULE"),
        ("rule-data", {"rule-data": "RULE x\nCLASS A\rMETHOD b\nENDRULE\n"}, "control characters"),
        ("stress", {"cpu-count": 1, "mem-type": "heap"}, "one of them"),
        ("latency", {"class": cls, "method": "greet", "latency": 100, "port": 0}, "port"),
    ]
    for action, fields, reason in bad:
        order = FaultOrder(fault_id(), "PhysicalMachineChaos", f"jvm-{action}",
                           {f"jvm-{action}": {"pid": target.pid, "port": target.port, **fields}})
        with pytest.raises(Refused, match=reason):
            inject(order)
        recover(order)
    assert target.ours() == []


def test_a_process_that_is_not_a_jvm_gets_no_signal(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        order = FaultOrder(fault_id(), "PhysicalMachineChaos", "jvm-gc", {"jvm-gc": {"pid": sleeper.pid}})
        with pytest.raises(Refused, match="not a HotSpot JVM"):
            inject(order)
        time.sleep(0.2)
        assert sleeper.poll() is None, "SIGQUIT reached a process that does not catch it"
        assert list(tmp_path.iterdir()) == [], "an attach file was left in its directory"
        recover(order)
    finally:
        sleeper.kill()
        sleeper.wait(5)


def test_a_port_held_by_another_process_is_refused(target: Jvm) -> None:
    taken = run_in(f"/run/netns/{target.netns}", lambda: socket.socket())
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        order = _pmc(target, "gc")
        order.params["jvm-gc"]["port"] = port
        with pytest.raises(Refused, match="taken by another process"):
            inject(order)
        recover(order)
    finally:
        taken.close()


def test_a_second_port_for_a_jvm_that_has_byteman_is_refused(target: Jvm) -> None:
    inject(first := _pmc(target, "latency", **{"class": "chaostest.ChaosTarget$Service", "method": "greet",
                                               "latency": 1}))
    recover(first)  # the agent stays, listening on target.port
    order = _pmc(target, "gc")
    order.params["jvm-gc"]["port"] = _free_port(target.netns)
    with pytest.raises(Refused, match="already loaded"):
        inject(order)
    recover(order)


def test_a_jvm_that_cannot_see_the_byteman_jar_is_refused(target: Jvm, tmp_path: Path) -> None:
    """As a container without Byteman: the JVM runs in a mount namespace where /usr/share/java is empty."""
    jar = jvm.byteman_jar()
    assert jar is not None
    idle = jvm_helper.build(jvm.HELPER_DIR, jar)  # the Idle class lives in the helper jar
    hidden = subprocess.Popen(["unshare", "--mount", "--propagation", "private", JAVA, "-XX:-UsePerfData", "-cp",
                               idle, jvm_helper.IDLE_CLASS], cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (jvm_attach.is_hotspot(hidden.pid) and _catches_quit(hidden.pid)):
            assert time.monotonic() < deadline and hidden.poll() is None, "the JVM did not start"
            time.sleep(0.05)
        run(["nsenter", "-t", str(hidden.pid), "-m", "mount", "-t", "tmpfs", "chaosplane-test",
             os.path.dirname(jar)])
        order = FaultOrder(fault_id(), "PhysicalMachineChaos", "jvm-gc", {"jvm-gc": {"pid": hidden.pid}})
        with pytest.raises(Refused, match="does not exist inside the target's filesystem"):
            inject(order)
        recover(order)
        assert jvm.listener(hidden.pid, 9288) == "none"
    finally:
        hidden.terminate()
        hidden.wait(10)
    recover(FaultOrder(fault_id(), "PhysicalMachineChaos", "jvm-gc", {"jvm-gc": {"pid": hidden.pid}}))  # gone


def _catches_quit(pid: int) -> bool:
    try:
        jvm_attach.check_jvm(pid)
        return True
    except Refused:
        return False


def test_the_jvm_of_a_container_is_found_by_its_pid_in_there(target: Jvm) -> None:
    assert jvm.jvm_beside(target.pid, 1) == target.pid
    assert jvm.jvm_beside(target.pid, None) == target.pid
    with pytest.raises(Refused, match="no process 2"):
        jvm.jvm_beside(target.pid, 2)


def test_capability_attaches_to_a_probe_jvm(helper_dir: str) -> None:
    name, ok, detail = jvm.capability()
    print(detail)
    assert (name, ok) == ("byteman", True) and "attached to a probe JVM" in detail


def test_rule_scripts_are_made_from_checked_values_only() -> None:
    assert jvm_rules.exception('java.io.IOException("BOOM")') == 'new java.io.IOException("BOOM")'
    assert jvm_rules.exception("new java.lang.IllegalStateException()") == "new java.lang.IllegalStateException()"
    assert jvm_rules.exception("java.lang.IllegalStateException") == "new java.lang.IllegalStateException()"
    assert jvm_rules.return_value(9999) == "9999"
    assert jvm_rules.return_value('"chaos"') == '"chaos"'
    assert jvm_rules.java_method("<init>") == "<init>"
    for value in ("java.lang.String.class", "a..b", "1abc", "com.example.new"):
        with pytest.raises(Refused):
            jvm_rules.java_class(value)
    script, names = jvm_rules.rename_rule_data("HELPER a.B\nRULE x y\nCLASS A\nMETHOD b\nIF true\nDO\n  c()\nENDRULE",
                                               "f-1")
    prefix = jvm_rules.prefix("f-1")
    assert names == [f"{prefix}rule-1"]
    assert script == f"HELPER a.B\nRULE {prefix}rule-1\nCLASS A\nMETHOD b\nIF true\nDO\nc()\nENDRULE\n"
