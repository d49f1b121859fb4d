#!/usr/bin/env python3
"""Cuts a (cmin-minimized) corpus down to a budget of files and bytes, keeping the inputs that
cover the most coverage edges: greedy maximum coverage over the `COV` lines of a libFuzzer merge
control file (`<fuzzer> -merge=1 -merge_control_file=CTL EMPTY_DIR CORPUS`).

    trim_corpus.py CTL CORPUS_DIR MAX_FILES MAX_BYTES

Files of CORPUS_DIR that are not picked are deleted. Used by `scripts/fuzz --minimize`.
"""
import heapq
import os
import sys


def main():
    ctl, corpus, max_files, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(ctl) as f:
        lines = f.read().splitlines()
    n = int(lines[0])
    paths = lines[2 : 2 + n]
    cov = {}
    for line in lines[2 + n :]:
        if line.startswith("COV "):
            parts = line.split()
            cov[int(parts[1])] = set(parts[2:])
    corpus = os.path.realpath(corpus)
    files = [i for i, p in enumerate(paths) if os.path.realpath(os.path.dirname(p)) == corpus]
    size = {i: os.path.getsize(paths[i]) for i in files}
    total = set().union(*(cov.get(i, set()) for i in files))

    # Lazy greedy: (-gain, size, index); a popped gain is re-checked against what is covered now.
    heap = [(-len(cov.get(i, ())), size[i], i) for i in files]
    heapq.heapify(heap)
    covered, picked, used = set(), [], 0
    while heap and len(picked) < max_files:
        neg, sz, i = heapq.heappop(heap)
        gain = len(cov.get(i, set()) - covered)
        if gain == 0:
            continue
        if gain != -neg:
            heapq.heappush(heap, (-gain, sz, i))
            continue
        if used + sz > max_bytes:
            continue
        picked.append(i)
        covered |= cov[i]
        used += sz
    keep = set(picked)
    for i in files:
        if i not in keep:
            os.remove(paths[i])
    print(
        f"{os.path.basename(corpus)}: kept {len(picked)} of {len(files)} files, {used} bytes, "
        f"{len(covered)} of {len(total)} edges"
    )


if __name__ == "__main__":
    main()
