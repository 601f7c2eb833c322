"""Debian packages the project needs on the machine, installed on demand.

`ensure(packages)` installs what is missing with apt-get when running as root, and fails with a
clear message otherwise. Services are never started by the install (policy-rc.d exits 101).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# What the test suite needs: the servers, the browser, and what the agent's faults use (iptables and
# nftables, tc from iproute2, stress-ng, ping, a JDK and Byteman for JVM faults, unshare/nsenter)
# plus the headers NetfilterQueue compiles against.
TEST_PACKAGES: list[str] = [
    "redis-server",
    "postgresql",
    "chromium",
    "fonts-dejavu-core",
    "iptables",
    "nftables",
    "iproute2",
    "iputils-ping",
    "stress-ng",
    "gcc",
    "libnetfilter-queue-dev",
    "libnfnetlink-dev",
    "openjdk-17-jdk-headless",
    "libbyteman-java",
    "util-linux",
    "libpango-1.0-0",  # WeasyPrint draws the PDF reports with Pango
    "libpangoft2-1.0-0",
    "poppler-utils",  # pdftoppm and pdftotext read the PDF reports back in tests
]
# What `make run` needs (the database is sqlite by default).
RUN_PACKAGES: list[str] = ["redis-server", "libpango-1.0-0", "libpangoft2-1.0-0", "fonts-dejavu-core"]

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


class SysDepsError(RuntimeError):
    pass


def is_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip().endswith("install ok installed")


def missing(packages: list[str]) -> list[str]:
    return [p for p in packages if not is_installed(p)]


def _apt(argv: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("sysdeps: " + " ".join(argv), file=sys.stderr, flush=True)
    result = subprocess.run(argv, env=env, check=False)
    if result.returncode != 0:
        raise SysDepsError(f"{' '.join(argv)} failed with exit code {result.returncode}")


def ensure(packages: list[str]) -> None:
    """Install the Debian packages in `packages` that are not installed yet."""
    todo = missing(packages)
    if not todo:
        return
    command = "apt-get install -y --no-install-recommends " + " ".join(todo)
    if os.geteuid() != 0:
        raise SysDepsError(f"missing Debian packages: {', '.join(todo)}; install them as root with: {command}")
    # Keep the packages' maintainer scripts from starting system services (Redis on 6379,
    # the main PostgreSQL cluster on 5432): invoke-rc.d asks policy-rc.d, and 101 means "no".
    created_policy = not POLICY_RC_D.exists()
    if created_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# temporary, written by devtools.sysdeps\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        _apt(["apt-get", "update"])
        _apt(["apt-get", "install", "-y", "--no-install-recommends", *todo])
    finally:
        if created_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    still = missing(todo)
    if still:
        raise SysDepsError(f"apt-get did not install: {', '.join(still)}")


def main(argv: list[str]) -> int:
    try:
        ensure(argv or TEST_PACKAGES)
    except SysDepsError as exc:
        print(f"sysdeps: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
