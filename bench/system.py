"""The machine and its processes: CPU time and RSS of a server's process tree from /proc, the machine's
description, the git revision, installed package versions. Standard library only; no servers, no load."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import REPO


def read_text(path: str) -> str | None:
    """A /proc file's text, None when the process (or the file) is gone."""
    try:
        with open(path, "r", encoding="latin-1") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def parse_proc_stat(text: str) -> dict[str, Any]:
    """Parse the contents of /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself contain spaces and parentheses, so the fields
    are split after the *last* ``)``. utime and stime are fields 14 and 15 (1-based), in clock ticks.
    """
    lparen = text.index("(")
    rparen = text.rindex(")")
    rest = text[rparen + 1 :].split()
    # rest[0] is field 3 (state), so field N is rest[N - 3].
    return {
        "pid": int(text[:lparen].strip()),
        "comm": text[lparen + 1 : rparen],
        "state": rest[0],
        "ppid": int(rest[4 - 3]),
        "utime": int(rest[14 - 3]),
        "stime": int(rest[15 - 3]),
    }


def process_tree(root: int, ppid_of: Mapping[int, int]) -> set[int]:
    """All pids in the tree rooted at ``root`` (inclusive), from a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppid_of.items():
        children.setdefault(ppid, []).append(pid)
    seen = {root}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _ppid_map() -> dict[int, int]:
    ppid_of: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = read_text(f"/proc/{name}/stat")
        if text:
            try:
                ppid_of[int(name)] = parse_proc_stat(text)["ppid"]
            except (ValueError, IndexError):
                pass
    return ppid_of


def tree_pids(root: int) -> set[int]:
    """pids in the process tree of ``root``: from /proc/PID/task/TID/children when the kernel has it
    (CONFIG_PROC_CHILDREN), otherwise from the parent pids of every process in /proc."""
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return process_tree(root, _ppid_map())
    seen = {root}
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            for child in map(int, (read_text(f"/proc/{pid}/task/{tid}/children") or "").split()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
    return seen


def tree_cpu_snapshot(root: int) -> dict[int, int]:
    """pid -> utime+stime (clock ticks) for every process in the tree of ``root`` (threads included)."""
    snap: dict[int, int] = {}
    for pid in tree_pids(root):
        text = read_text(f"/proc/{pid}/stat")
        if text:
            st = parse_proc_stat(text)
            snap[pid] = st["utime"] + st["stime"]
    return snap


def tree_cpu_delta_ticks(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """CPU ticks spent by a process tree between two snapshots (pid -> utime+stime).

    Processes that appeared in between count in full; processes that exited in between are lost (their time
    is not visible any more), which the runner avoids by never restarting a server inside a timed window.
    """
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def tree_rss_kib(root: int) -> int:
    """Resident set size of the whole process tree of ``root``, KiB (VmRSS of each process)."""
    total = 0
    for pid in tree_pids(root):
        m = re.search(r"^VmRSS:\s+(\d+) kB", read_text(f"/proc/{pid}/status") or "", re.M)
        if m:
            total += int(m.group(1))
    return total


# --------------------------------------------------------------------------------------------------
# Machine, tools and revisions
# --------------------------------------------------------------------------------------------------


def parse_udp_counters(text: str) -> dict[str, int]:
    """The ``Udp:`` counters of /proc/net/snmp (a header line of names, then a line of values), by name."""
    lines = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")]
    if len(lines) < 2 or len(lines[0]) != len(lines[1]):
        return {}
    return {k: int(v) for k, v in zip(lines[0], lines[1], strict=True)}


def udp_counters() -> dict[str, int]:
    """The machine's UDP counters now (InDatagrams, RcvbufErrors: datagrams dropped because a socket's receive
    buffer was full, ...); {} where /proc/net/snmp cannot be read."""
    return parse_udp_counters(read_text("/proc/net/snmp") or "")


def parse_udp_socket_drops(text: str, port: int) -> int:
    """The ``drops`` (last column) of the sockets bound to local ``port`` in /proc/net/udp or udp6's text:
    datagrams dropped for those sockets, mostly on a full receive buffer."""
    total = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13 or ":" not in fields[1]:
            continue
        try:
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
        except ValueError:
            continue
    return total


def udp_socket_drops(port: int) -> int:
    """Datagrams dropped so far by the UDP sockets bound to ``port`` (every worker's, IPv4 and IPv6)."""
    return sum(parse_udp_socket_drops(read_text(f) or "", port) for f in ("/proc/net/udp", "/proc/net/udp6"))


def cmd_output(cmd: list[str]) -> str:
    """stdout + stderr of a short command, stripped; "unavailable" when it cannot run."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (p.stdout + p.stderr).strip()


def machine_info(nginx: str) -> dict[str, Any]:
    """CPUs, CPU model, memory, kernel, wrk and nginx versions, Python, clock ticks, load average."""
    m = re.search(r"^model name\s*:\s*(.+)$", read_text("/proc/cpuinfo") or "", re.M)
    mm = re.search(r"^MemTotal:\s+(\d+) kB", read_text("/proc/meminfo") or "", re.M)
    wrk_v = cmd_output(["wrk", "-v"]).splitlines()
    wrk_line = re.sub(r"\s*Copyright.*$", "", wrk_v[0] if wrk_v else "wrk: unknown")
    return {
        "nproc": os.cpu_count(),
        "nproc_usable": len(os.sched_getaffinity(0)),
        "cpu_model": m.group(1).strip() if m else "unknown",
        "mem_gib": round(int(mm.group(1)) / 1024**2, 1) if mm else None,
        "kernel": platform.release(),
        "wrk_version": wrk_line,
        "nginx_version": cmd_output([nginx, "-v"]).replace("nginx version: ", ""),
        "python": platform.python_version(),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "loadavg": (read_text("/proc/loadavg") or "").strip(),
    }


def file_sha256(path: str) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def git_revision() -> str | None:
    out = cmd_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return out if re.fullmatch(r"[0-9a-f]{4,40}", out) else None


def package_versions(python: Path, packages: Iterable[str]) -> dict[str, str]:
    """``{package: version or "missing", "python": X.Y.Z}`` as the interpreter ``python`` sees them (run from /
    so that the checkout cannot stand in for an installed package)."""
    code = (
        "import importlib.metadata as m, json, sys, platform\n"
        "out = {}\n"
        f"for p in {list(packages)!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "out['python'] = platform.python_version()\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"error": p.stderr.strip()[-200:]}


def display_path(p: Path) -> str:
    """``p`` relative to the repository when it is inside it, else as given."""
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)
