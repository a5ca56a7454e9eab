#!/usr/bin/env python3
"""Self cost (Ir) per function from a callgrind output file, sorted; works on
the partial dumps callgrind_control -d writes (callgrind_annotate 3.19 shows
them as one inclusive function).  Usage: cgself.py FILE [N] [REQUESTS]"""
import collections
import re
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
reqs = int(sys.argv[3]) if len(sys.argv) > 3 else 0
names, cost = {}, collections.Counter()
ob = fn = None
skip = False
obs = {}


def ref(kind, s, table):
    m = re.match(r"\((\d+)\)(?: (.*))?", s)
    if not m:
        return s
    if m.group(2):
        table[(kind, m.group(1))] = m.group(2)
    return table.get((kind, m.group(1)), "?%s" % m.group(1))


for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("ob="):
        ob = ref("ob", line[3:], obs)
    elif line.startswith("fn="):
        fn = "%s [%s]" % (ref("fn", line[3:], names), (ob or "").rsplit("/", 1)[-1])
    elif line.startswith(("cob=", "cfi=", "cfl=")):
        ref(line[:3], line[4:], obs if line.startswith("cob") else names)
    elif line.startswith("cfn="):
        ref("fn", line[4:], names)
    elif line.startswith("calls="):
        skip = True
    elif line and (line[0].isdigit() or line[0] in "+-*"):
        if skip:
            skip = False
            continue
        parts = line.split()
        if len(parts) >= 2 and fn:
            cost[fn] += int(parts[1])
total = sum(cost.values())
print("total self Ir %d%s" % (total, (", %d per request" % (total // reqs)) if reqs else ""))
for f, c in cost.most_common(top):
    print("%6.2f%%  %12d%s  %s" % (100.0 * c / total, c, ("  %6d/req" % (c // reqs)) if reqs else "", f))
