#!/usr/bin/env python3
"""Instructions per request of each Wasm function of edge-mfa, from a callgrind count.

callgrind counts the code V8 compiled from the module but cannot name it: it is anonymous
executable memory. V8 starts a module's code space with a jump table, one 8-byte slot per
function the module defines (`jmp rel32`, in function index order), so the code a slot jumps
to is that function's. This reads the counted Envoy's memory (valgrind's gdbserver), finds the
jump table, gives each counted instruction to the function whose code starts last before it,
and names the functions from the module's name section (`wasm-dis` of a build that kept it).

Code V8 made beside the functions (the calls into the host) counts for the function before it
in memory, so a function the pass never calls can show a small share: read the large ones.

Usage: wasm_profile.py --pid PID --dump CALLGRIND_OUT --wat MODULE.wat --requests N [--top K]
(scripts/profile-wasm runs it.)
"""

import argparse
import bisect
import collections
import os
import re
import struct
import subprocess
import sys
import tempfile


def instruction_counts(path):
    """Instructions by address of callgrind's unnamed object ('???': V8's code), from a dump
    written with --dump-instr=yes."""
    names, obj, last, inclusive = {}, None, 0, False
    counts = collections.Counter()

    def named(text):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                obj = named(line[3:])
                continue
            if line.startswith("cob="):
                named(line[4:])
                continue
            if line.startswith("calls="):
                inclusive = True  # the next cost line is the call's inclusive cost
                continue
            if not line or line[0] not in "0123456789+-*":
                continue
            parts = line.split()
            a = parts[0]
            if a == "*":
                addr = last
            elif a[0] in "+-":
                step = int(a[1:], 16) if a[1:].startswith("0x") else int(a[1:])
                addr = last + step if a[0] == "+" else last - step
            else:
                addr = int(a, 16) if a.startswith("0x") else int(a)
            last = addr
            if inclusive:
                inclusive = False
                continue
            if obj == "???" and len(parts) >= 2:
                counts[addr] += int(parts[-1])
    return counts


def executable_regions(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[1].startswith("rwx"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                yield lo, hi


def read_memory(pid, lo, hi, out):
    subprocess.run(
        ["gdb", "-batch", "-ex", f"target remote | vgdb --pid={pid}",
         "-ex", f"dump binary memory {out} {lo:#x} {hi:#x}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=300,
    )
    with open(out, "rb") as f:
        return f.read()


def jump_table(code, base, functions):
    """Code start of each defined function, or None when `code` does not begin with a table of
    `functions` slots."""
    starts = []
    for k in range(functions):
        slot = code[k * 8:k * 8 + 5]
        if len(slot) < 5 or slot[0] != 0xE9:
            return None
        starts.append(base + k * 8 + 5 + struct.unpack("<i", slot[1:5])[0])
    return starts


def function_names(wat):
    names = []
    with open(wat) as f:
        for line in f:
            if line.startswith(" (func "):
                names.append(line.split()[1].lstrip("$"))
    return names


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    if len(out) != len(names):
        out = names
    return [re.sub(r"\[[0-9a-f]{16}\]", "", n) for n in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--wat", required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()

    counts = instruction_counts(a.dump)
    names = function_names(a.wat)
    total_unnamed = sum(counts.values())
    found = None
    with tempfile.TemporaryDirectory() as tmp:
        regions = sorted(executable_regions(a.pid), key=lambda r: -sum(v for k, v in counts.items() if r[0] <= k < r[1]))
        for lo, hi in regions[:4]:
            code = read_memory(a.pid, lo, hi, os.path.join(tmp, "code.bin"))
            starts = jump_table(code, lo, len(names))
            if starts:
                found = (lo, hi, starts)
                break
    if not found:
        sys.exit("wasm_profile: no V8 jump table of the module's functions in the process's code")
    lo, hi, starts = found
    by_start = {}
    for index, s in enumerate(starts):
        by_start.setdefault(s, index)
    ordered = sorted(by_start)
    per_function = collections.Counter()
    for addr, n in counts.items():
        if lo <= addr < hi:
            i = bisect.bisect_right(ordered, addr) - 1
            per_function[by_start[ordered[i]] if i >= 0 else -1] += n
    wasm_total = sum(per_function.values())
    readable = demangle(names)
    req = a.requests
    print(f"Wasm code: {wasm_total / req:,.0f} instructions/request "
          f"(V8's other unnamed code, its builtins and wrappers: {(total_unnamed - wasm_total) / req:,.0f})\n")
    print("| instructions/request | share | function |\n| ---: | ---: | --- |")
    for index, n in per_function.most_common(a.top):
        name = readable[index] if 0 <= index < len(readable) else "(before the first function)"
        print(f"| {n / req:,.0f} | {100 * n / wasm_total:.1f} % | `{name[:140]}` |")


if __name__ == "__main__":
    main()
