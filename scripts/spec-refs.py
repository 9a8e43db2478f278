#!/usr/bin/env python3
"""Rewrites "SPEC §N" references into references to the documentation page
that says the same thing in this project's own words.

The product specification the code was built to is not in the repository,
so "SPEC §14" resolves for nobody who reads the code. Each section maps to
a page under docs/src/ (a few sections cover several topics: a rule on the
line's own words picks the page then). Rewritten:

- in code and other text files: `SPEC §14` -> `docs/src/concepts/stages.md`
  (a path from the repository root), `SPEC §7, §9` -> both paths;
- in the book (docs/src/**/*.md): `(SPEC §14)` -> `([Stages of
  autonomy](../concepts/stages.md))`, a bare `SPEC §10 asks ...` -> `the
  specification ([The fleet](../concepts/fleet.md)) asks ...`, and a
  reference to the page it stands in is dropped.

Run it from anywhere; it edits the tracked files of the repository it sits
in and prints what it changed. Rerun it after merging a branch that adds
references: it is idempotent. `--check` changes nothing and exits 1 when a
reference is left.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = "docs/src"

# Section -> the page that tells the same (and an anchor on it).
SECTIONS = {
    1: ("design/architecture.md", "how-an-exchange-flows"),
    2: ("reference/configuration.md", "routescompare--when-two-answers-agree"),
    3: ("concepts/guards.md", ""),
    4: ("reference/cli.md", ""),
    5: ("reference/configuration.md", ""),
    6: ("reference/sqlite-schema.md", ""),
    7: ("reference/admin-api.md", ""),
    8: ("reference/metrics.md", ""),
    9: ("reference/limits.md", ""),
    10: ("concepts/fleet.md", ""),
    11: ("guide/llm.md", ""),
    12: ("concepts/guards.md", ""),
    13: ("guide/replay.md", ""),
    14: ("concepts/stages.md", ""),
}

# Sections that cover several topics: the first rule whose pattern is found
# on the reference's line (case-insensitive) picks the page instead.
REFINE = {
    9: [
        (r"never twice", ("concepts/canary.md", "")),
        (r"admin", ("reference/admin-api.md", "")),
        (r"credential|redact|0600|its wal files", ("design/threat-model.md", "")),
        (r"noise|2xx answers", ("reference/configuration.md", "routescompare--when-two-answers-agree")),
        (r"paths|path_prefix", ("reference/configuration.md", "path-matching")),
    ],
    12: [
        (r"notif", ("reference/configuration.md", "notify--webhooks-for-rollout-events")),
        (r"gate|forced", ("concepts/canary.md", "")),
    ],
    13: [
        (r"storage policy|store\.bodies", ("reference/configuration.md", "store--the-sqlite-log")),
    ],
}

REF = re.compile(r"SPEC §(\d+)((?:,\s*§\d+)*)")


def target(section, line):
    for pattern, page in REFINE.get(section, []):
        if re.search(pattern, line, re.IGNORECASE):
            return page
    if section not in SECTIONS:
        raise KeyError(section)
    return SECTIONS[section]


def title(page):
    with open(os.path.join(ROOT, DOCS, page), encoding="utf-8") as f:
        for line in f:
            if line.startswith("# "):
                return line[2:].strip()
    return page


def numbers(first, rest):
    return [int(first)] + [int(n) for n in re.findall(r"§(\d+)", rest)]


def rewrite_code(line):
    def sub(m):
        pages = []
        for n in numbers(m.group(1), m.group(2)):
            path = f"{DOCS}/{target(n, line)[0]}"
            if path not in pages:
                pages.append(path)
        return ", ".join(pages)

    return REF.sub(sub, line)


# In the book: a reference that is a whole parenthesis, one that opens a
# longer parenthesis, or one in running text.
BOOK = re.compile(r"(?P<whole>\s?\(SPEC §(?P<a>\d+)(?P<ar>(?:,\s*§\d+)*)\))"
                  r"|(?P<open>\()?SPEC §(?P<b>\d+)(?P<br>(?:,\s*§\d+)*)")


def rewrite_book(line, here):
    """`here` is the page's path under docs/src."""

    def links(ns):
        out = []
        for n in ns:
            page, anchor = target(n, line)
            if page == here:
                continue
            rel = os.path.relpath(page, os.path.dirname(here) or ".")
            link = f"[{title(page)}]({rel}{'#' + anchor if anchor else ''})"
            if link not in out:
                out.append(link)
        return ", ".join(out)

    def sub(m):
        if m.group("whole"):
            inner = links(numbers(m.group("a"), m.group("ar")))
            return f" ({inner})" if inner else ""
        inner = links(numbers(m.group("b"), m.group("br")))
        if m.group("open"):
            return f"({inner}" if inner else "("
        return f"the specification ({inner})" if inner else "the specification"

    return BOOK.sub(sub, line)


def tracked_files():
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for path in out.split("\0"):
        if not path or path == "scripts/spec-refs.py" or path.startswith("docs/book/"):
            continue
        yield path


def main():
    check = "--check" in sys.argv[1:]
    changed, left = {}, []
    for path in tracked_files():
        full = os.path.join(ROOT, path)
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        if not REF.search(text):
            continue
        if check:
            left += [f"{path}:{i}" for i, l in enumerate(text.split("\n"), 1) if REF.search(l)]
            continue
        book = path.startswith(DOCS + "/") and path.endswith(".md")
        here = path[len(DOCS) + 1:]
        lines = text.split("\n")
        new = []
        for i, line in enumerate(lines, 1):
            try:
                new.append(rewrite_book(line, here) if book else rewrite_code(line))
            except KeyError as e:
                left.append(f"{path}:{i}: no page for §{e.args[0]}")
                new.append(line)
        out = "\n".join(new)
        if out != text:
            changed[path] = sum(len(REF.findall(l)) for l in lines)
            with open(full, "w", encoding="utf-8") as f:
                f.write(out)
    for path, n in sorted(changed.items()):
        print(f"{n:4} {path}")
    print(f"{sum(changed.values())} references rewritten in {len(changed)} files")
    if left:
        print("left:", *left, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
