"""The small Java helper that JVM stress and GC faults need, and its build into a jar.

Byteman rules only run when their trigger method is called, and a stress or GC fault names no method of
the application. Chaos Mesh solves this with an agent of its own whose thread calls an empty method
every few seconds; so does this helper:

- `Agent` (the jar's Agent-Class) starts one daemon thread, `cp-trigger-<hash>`, that calls
  `Trigger.tick()` every 200 ms; stress and GC rules are injected AT ENTRY of `tick`.
- `FaultHelper` (the rules' HELPER, a Byteman Helper) does the work, once per rule, by rule name:
  `cpu(n)` spins n threads, `memory("heap")` fills the heap to 95% of -Xmx, `memory("stack")` starts
  up to 256 threads each holding a deep stack, `gcOnce()` calls System.gc(). Byteman calls the helper's
  `uninstalled(Rule)` when the rule is unloaded: the threads stop and the memory is let go, so
  unloading the rule (recovery) is all it takes, from any process.

The jar is built once with javac (--release 8, so Java 8 and later JVMs load it) into a cache
directory, named after the source's hash, world-readable because the target JVM may run as any user.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile

from nodeagent.orders import Refused

_TEMPLATES = {
    "Agent.java": """package __PACKAGE__;

import java.lang.instrument.Instrumentation;

/** Loaded by the Chaosplane agent through the attach API: starts the trigger thread, once. */
public final class Agent {
    private static boolean started;

    public static synchronized void agentmain(String args, Instrumentation inst) {
        if (started) {
            return;
        }
        started = true;
        Thread thread = new Thread(new Trigger(), "__THREAD__");
        thread.setDaemon(true);
        thread.start();
    }
}
""",
    "Trigger.java": """package __PACKAGE__;

/** Calls tick() every 200 ms: the method stress and GC rules are injected into. */
public final class Trigger implements Runnable {
    public static void tick() {
    }

    public void run() {
        while (true) {
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                return;
            }
            tick();
        }
    }
}
""",
    "Idle.java": """package __PACKAGE__;

/** A JVM that does nothing for a minute: what the capability probe attaches to. */
public final class Idle {
    public static void main(String[] args) throws InterruptedException {
        Thread.sleep(60000);
    }
}
""",
    "FaultHelper.java": """package __PACKAGE__;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.LockSupport;

import org.jboss.byteman.rule.Rule;
import org.jboss.byteman.rule.helper.Helper;

/**
 * Byteman helper for stress and GC rules. Work is keyed by rule name and runs at most once per
 * installed rule; Byteman's uninstalled(Rule) callback, when the rule is unloaded, stops it.
 */
public class FaultHelper extends Helper {
    private static final Object LOCK = new Object();
    private static final Set<String> LIVE = new HashSet<String>();
    private static final Set<String> COLLECTED = new HashSet<String>();
    private static final Map<String, Load> RUNNING = new HashMap<String, Load>();

    protected FaultHelper(Rule rule) {
        super(rule);
    }

    public static void installed(Rule rule) {
        synchronized (LOCK) {
            LIVE.add(rule.getName());
        }
    }

    public static void uninstalled(Rule rule) {
        Load load;
        synchronized (LOCK) {
            LIVE.remove(rule.getName());
            COLLECTED.remove(rule.getName());
            load = RUNNING.remove(rule.getName());
        }
        if (load != null) {
            load.stop();
        }
    }

    public void gcOnce() {
        synchronized (LOCK) {
            if (!LIVE.contains(rule.getName()) || !COLLECTED.add(rule.getName())) {
                return;
            }
        }
        System.gc();
    }

    public void cpu(int count) {
        start(new Load(rule.getName(), "cpu", count));
    }

    public void memory(String type) {
        start(new Load(rule.getName(), type, "stack".equals(type) ? 256 : 1));
    }

    private void start(Load load) {
        synchronized (LOCK) {
            String name = rule.getName();
            if (!LIVE.contains(name) || RUNNING.containsKey(name)) {
                return;
            }
            RUNNING.put(name, load);
            load.start();
        }
    }

    /** Threads doing one kind of load until stop(). */
    static final class Load implements Runnable {
        private final String name;
        private final String type;
        private final int count;
        private final List<Thread> threads = new ArrayList<Thread>();
        private volatile boolean stopped;
        volatile long sink;

        Load(String name, String type, int count) {
            this.name = name;
            this.type = type;
            this.count = count;
        }

        void start() {
            if ("stack".equals(type)) {
                Thread filler = new Thread(new Runnable() {
                    public void run() {
                        for (int i = 0; i < count && !stopped; i++) {
                            if (!spawn(name + "-stack-" + i, 1L << 20)) {
                                return;
                            }
                        }
                    }
                }, name + "-stack");
                filler.setDaemon(true);
                filler.start();
                return;
            }
            for (int i = 0; i < count; i++) {
                spawn(name + "-" + type + "-" + i, 0);
            }
        }

        private boolean spawn(String threadName, long stackSize) {
            try {
                Thread thread = new Thread(null, this, threadName, stackSize);
                thread.setDaemon(true);
                synchronized (threads) {
                    threads.add(thread);
                }
                thread.start();
                return true;
            } catch (Throwable e) {
                return false;
            }
        }

        void stop() {
            stopped = true;
            List<Thread> all;
            synchronized (threads) {
                all = new ArrayList<Thread>(threads);
            }
            for (Thread thread : all) {
                LockSupport.unpark(thread);
            }
            for (Thread thread : all) {
                try {
                    thread.join(2000);
                } catch (InterruptedException e) {
                    break;
                }
            }
            if ("heap".equals(type)) {
                System.gc();  // the filled heap is garbage now: give it back at once
            }
        }

        public void run() {
            if ("cpu".equals(type)) {
                long x = 0;
                while (!stopped) {
                    x = x * 31 + 7;
                }
                sink = x;
            } else if ("heap".equals(type)) {
                fillHeap();
            } else {
                holdStack();
            }
        }

        private void fillHeap() {
            List<byte[]> held = new ArrayList<byte[]>();
            Runtime rt = Runtime.getRuntime();
            while (!stopped) {
                long used = rt.totalMemory() - rt.freeMemory();
                if (used < rt.maxMemory() / 100 * 95) {
                    try {
                        held.add(new byte[1 << 20]);
                        continue;
                    } catch (OutOfMemoryError e) {
                        for (int i = 0; i < 4 && !held.isEmpty(); i++) {
                            held.remove(held.size() - 1);
                        }
                    }
                }
                LockSupport.parkNanos(200000000L);
            }
            held.clear();
        }

        private void holdStack() {
            try {
                dive(0, Integer.MAX_VALUE);
            } catch (StackOverflowError e) {
                // measured is now how deep this stack goes
            }
            try {
                dive(0, measured / 10 * 9);
            } catch (StackOverflowError e) {
                // full after all: the thread ends and its stack is let go
            }
        }

        private volatile int measured;

        private int dive(int depth, int limit) {
            if (depth > measured) {
                measured = depth;
            }
            if (depth >= limit) {
                while (!stopped) {
                    LockSupport.parkNanos(200000000L);
                }
                return depth;
            }
            long a = depth, b = a + 1, c = b + 1, d = c + 1;
            return dive(depth + 1, limit) + (int) ((a + b + c + d) & 0);
        }
    }
}
""",
}


def _digest(sources: dict[str, str]) -> str:
    text = "\0".join(f"{name}\0{body}" for name, body in sorted(sources.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The package is named after the source's hash: a JVM keeps the first copy of a class it loaded, so a
#: changed helper gets new class names and a JVM that has the old one loads the new one beside it.
PACKAGE = f"chaosplane.jvm.h{_digest(_TEMPLATES)}"
#: The trigger thread's name, also hashed: it is how the agent sees (in /proc/PID/task/*/comm, 15
#: characters) that this version of the helper already runs in a JVM.
TRIGGER_THREAD = f"cp-trigger-{_digest(_TEMPLATES)[:4]}"
SOURCES = {name: body.replace("__PACKAGE__", PACKAGE).replace("__THREAD__", TRIGGER_THREAD)
           for name, body in _TEMPLATES.items()}
TRIGGER_CLASS = f"{PACKAGE}.Trigger"
HELPER_CLASS = f"{PACKAGE}.FaultHelper"
TRIGGER_METHOD = "tick"
IDLE_CLASS = f"{PACKAGE}.Idle"

_lock = threading.Lock()


def jar_path(directory: str) -> str:
    return os.path.join(directory, f"chaosplane-jvm-helper-{_digest(SOURCES)}.jar")


def build(directory: str, byteman_jar: str) -> str:
    """The helper jar in `directory`, compiled now unless a jar of this source is already there."""
    path = jar_path(directory)
    with _lock:
        if os.path.isfile(path):
            return path
        javac = shutil.which("javac")
        if javac is None:
            raise Refused("building the JVM stress/GC helper needs javac (a JDK, e.g. openjdk-17-jdk-headless)")
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)  # noqa: S103 - the target JVM, under any user, opens the jar
        with tempfile.TemporaryDirectory(prefix="chaosplane-jvm-helper-") as work:
            src = os.path.join(work, "src")
            out = os.path.join(work, "classes")
            os.makedirs(src)
            files = []
            for name, body in SOURCES.items():
                files.append(os.path.join(src, name))
                with open(files[-1], "w") as f:
                    f.write(body)
            done = subprocess.run(  # argv only; every path is ours
                [javac, "-nowarn", "-Xlint:-options", "--release", "8", "-cp", byteman_jar, "-d", out, *files],
                capture_output=True, text=True, timeout=120, check=False,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
            )
            if done.returncode != 0:
                raise Refused(f"javac could not build the JVM helper: {done.stderr.strip()[-400:]}")
            partial = f"{path}.{os.getpid()}.tmp"
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
                jar.writestr("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\r\nAgent-Class: {PACKAGE}.Agent\r\n"
                                                     "Created-By: chaosplane\r\n\r\n")
                for root, _, names in os.walk(out):
                    for name in sorted(names):
                        full = os.path.join(root, name)
                        jar.write(full, os.path.relpath(full, out))
            os.chmod(partial, 0o644)
            os.replace(partial, path)
    return path
