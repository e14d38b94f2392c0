#!/usr/bin/env python3
"""Run every peerconf example in the docs and check its exit code (driven by ci/doc-examples.sh).

Usage: python3 ci/doc_examples.py FILE.md...   (run from the repository root, with the binary
under test on PATH as `peerconf`; ci/doc-examples.sh sets that up).

What is run
  Fenced code blocks whose info string is `sh`, `bash`, `shell` or `console`. In sh/bash/shell
  blocks every line is a command; in console blocks only lines starting `$ ` are (the rest is
  output). A trailing backslash, `|`, `&&` or `||` continues a command on the next line, and a
  here-document (`<<'EOF'` ... `EOF`) belongs to the command that opens it.

  A command is RUN when it invokes `peerconf render|check|test|explain` (anywhere on the line, so
  `VAR=x peerconf ...` and `printf ... | peerconf ...` count) or `cargo run [ARGS] -- render|
  check|test|explain`. `cargo run [ARGS] --` is replaced by `peerconf` (the same arguments against the
  binary under test, without a second build); DOC_EXAMPLES_CARGO_RUN=1 runs it as written
  instead. Setup lines in the same block run too, in order: `mkdir [-p] /tmp/...`, and
  `printf`/`echo`/`cat` writing a file under /tmp (`printf '...' > /tmp/resolv.conf`,
  `cat > /tmp/t.cfg <<'EOF'`), so an example can create its output directory or input file.
  Every other line (kubectl, cargo test, docker...) is NOT run.

  Each command runs with `bash -o pipefail -c`, from the repository root, stdin /dev/null,
  a 120 s limit, and the environment minus the variables peerconf reads (POD_NAMESPACE,
  POD_NAME, POD_IP, REPLICAS, CLUSTER_DOMAIN, PEERCONF_*), so the machine's env cannot change
  the result. Every `/tmp` path in a command is replaced by a fresh directory per docs file
  (created empty by this script), so examples may write to /tmp/... without touching /tmp.

Markers (an HTML comment on its own line, before the fence; blank lines may come between)
  <!-- doc-examples: expect-exit N -->   every command run from the next block must exit N
                                           (default: 0).
  <!-- doc-examples: feature NAME -->     the next block runs only when DOC_EXAMPLES_FEATURES
                                           (comma-separated) has NAME, i.e. PEERCONF_BIN was
                                           built with --features NAME; else it is skipped.
  <!-- doc-examples: skip REASON -->      the next block is not run (REASON is required and
                                           printed; use it for examples that need a cluster or
                                           a DNS server).

Failures
  A command whose exit code differs from the expected one; a peerconf command in a fenced block
  of another language or none (it would escape this check: label it or mark it skip); a marker
  that is not followed by a block; an unterminated fence; no command at all. Each failure names
  FILE:LINE, the command, and its stderr. The last line is exactly
  `doc-examples: N passed, M failed`; the exit status is 1 when M > 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

RUN_LANGS = {"sh", "bash", "shell", "console"}
PEERCONF_RE = re.compile(r"(?:^|[\s|;&(`])peerconf\s+(?:render|check|test|explain)\b")
CARGO_RUN_RE = re.compile(r"\bcargo\s+run\b(?:\s+(?!--(?:\s|$))\S+)*\s+--\s+(?=(?:render|check|test|explain)\b)")
# setup lines, run in order with the examples: mkdir of /tmp dirs, and printf/echo/cat writing a
# file under /tmp (nothing else, so an example can never touch the machine outside /tmp)
SETUP_RE = re.compile(
    r"^\s*(?:mkdir(?:\s+-p)?(?:\s+/tmp/\S+)+\s*|(?:printf|echo|cat)\b[^|;&<>]*>\s*/tmp/\S+(?:\s+<<-?\s*['\"]?\w+['\"]?)?\s*)$"
)
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
MARKER_RE = re.compile(r"^\s*<!--\s*doc-examples:\s*(.*?)\s*-->\s*$")
# a line continues when it ends in a backslash, a pipe, && or || (comments aside)
CONTINUED_RE = re.compile(r"(\\|\|\||&&|(?<!\|)\|)\s*$")
HEREDOC_RE = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
TMP_RE = re.compile(r"(?<![\w./-])/tmp(?=/|\s|$|['\"])")
SCRUB_ENV = {"POD_NAMESPACE", "POD_NAME", "POD_IP", "REPLICAS", "CLUSTER_DOMAIN"}
TIMEOUT_S = 120


@dataclass
class Command:
    file: str
    line: int
    text: str
    expect: int
    setup: bool = False


@dataclass
class Doc:
    commands: list[Command] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def is_example(text: str) -> bool:
    return bool(PEERCONF_RE.search(text) or CARGO_RUN_RE.search(text))


def logical_lines(body: list[tuple[int, str]], console: bool) -> list[tuple[int, str]]:
    """Join continuations and here-documents into (first line number, command) pairs."""
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(body):
        num, line = body[i]
        i += 1
        if console:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = line
        while CONTINUED_RE.search(text) and i < len(body):
            nxt = body[i][1]
            i += 1
            if console and nxt.startswith("> "):
                nxt = nxt[2:]
            text = text + "\n" + nxt
        m = HEREDOC_RE.search(text)
        if m:
            term = m.group(2)
            while i < len(body):
                nxt = body[i][1]
                i += 1
                text += "\n" + nxt
                if nxt.strip() == term:
                    break
        out.append((num, text))
    return out


def parse(path: Path) -> Doc:
    doc = Doc()
    lines = path.read_text(encoding="utf-8").splitlines()
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER_RE.match(line)
        if m:
            if marker:
                doc.errors.append(f"{path}:{marker[0]}: doc-examples marker not followed by a code block")
            marker = (i + 1, m.group(1))
            i += 1
            continue
        f = FENCE_RE.match(line)
        if not f:
            if marker and line.strip():
                doc.errors.append(f"{path}:{marker[0]}: doc-examples marker not followed by a code block")
                marker = None
            i += 1
            continue
        indent, fence, lang = len(f.group(1)), f.group(2), f.group(3).lower()
        start = i + 1
        body: list[tuple[int, str]] = []
        i += 1
        closed = False
        while i < len(lines):
            cur = lines[i]
            if cur.strip().startswith(fence[0] * len(fence)) and cur.strip().strip(fence[0]) == "":
                closed = True
                i += 1
                break
            # strip up to the fence's own indentation (fences inside list items)
            strip = min(indent, len(cur) - len(cur.lstrip(" ")))
            body.append((i + 1, cur[strip:]))
            i += 1
        if not closed:
            doc.errors.append(f"{path}:{start}: unterminated ``` block")
        expect = 0
        skip = None
        if marker:
            what = marker[1]
            em = re.fullmatch(r"expect-exit\s+(\d+)", what)
            sm = re.fullmatch(r"skip\s+(\S.*)", what)
            fm = re.fullmatch(r"feature\s+(\w+)", what)
            if em:
                expect = int(em.group(1))
            elif sm:
                skip = sm.group(1)
            elif fm:
                have = os.environ.get("DOC_EXAMPLES_FEATURES", "").split(",")
                if fm.group(1) not in have:
                    skip = (
                        f"needs a binary built with --features {fm.group(1)} "
                        f"(DOC_EXAMPLES_FEATURES={fm.group(1)} PEERCONF_BIN=that binary)"
                    )
            else:
                doc.errors.append(f"{path}:{marker[0]}: unknown doc-examples marker {what!r}")
            marker = None
        if lang not in RUN_LANGS:
            if skip is None:
                for num, text in body:
                    stripped = re.sub(r"^\s*\$\s+", "", text)
                    if is_example(stripped) and not stripped.lstrip().startswith("#"):
                        doc.errors.append(
                            f"{path}:{num}: peerconf example in a ```{lang or '(no language)'} block is not run: "
                            "label the block sh/console, or mark it `<!-- doc-examples: skip REASON -->`"
                        )
            continue
        if skip is not None:
            doc.skipped.append(f"{path}:{start}: {skip}")
            continue
        for num, text in logical_lines(body, console=(lang == "console")):
            if is_example(text):
                doc.commands.append(Command(str(path), num, text, expect))
            elif SETUP_RE.match(text.split("\n", 1)[0]):
                doc.commands.append(Command(str(path), num, text, 0, setup=True))
    if marker:
        doc.errors.append(f"{path}:{marker[0]}: doc-examples marker not followed by a code block")
    return doc


def prepare(cmd: str, tmp: Path) -> str:
    if os.environ.get("DOC_EXAMPLES_CARGO_RUN") != "1":
        cmd = CARGO_RUN_RE.sub("peerconf ", cmd)
    return TMP_RE.sub(str(tmp), cmd)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SCRUB_ENV and not k.startswith("PEERCONF_")}


def tail(text: str, n: int = 15) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} lines above)"] + lines[-n:]
    return "\n".join("        " + ln for ln in lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    env = clean_env()
    passed = failed = 0
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="peerconf-doc-examples.") as work:
        for n, name in enumerate(argv):
            path = Path(name)
            doc = parse(path)
            for err in doc.errors:
                print(f"FAIL  {err}")
                failed += 1
            skipped += doc.skipped
            tmp = Path(work) / f"{n}-{path.name}" / "tmp"
            tmp.mkdir(parents=True)
            for c in doc.commands:
                shown = c.text.replace("\n", "\n        ")
                run = prepare(c.text, tmp)
                try:
                    r = subprocess.run(
                        ["bash", "-o", "pipefail", "-c", run],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT_S,
                    )
                    code, out, err = r.returncode, r.stdout, r.stderr
                except subprocess.TimeoutExpired as e:
                    code = None
                    out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
                    err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
                if c.setup:
                    if code != 0:
                        print(f"FAIL  {c.file}:{c.line}: setup command exited {code}: {shown}\n      stderr:\n{tail(err)}")
                        failed += 1
                    continue
                if code == c.expect:
                    passed += 1
                    note = "" if c.expect == 0 else f"  (exit {code}, as marked)"
                    print(f"ok    {c.file}:{c.line}: {shown}{note}")
                else:
                    failed += 1
                    got = f"timed out after {TIMEOUT_S}s" if code is None else f"exited {code}"
                    ran = "" if run == c.text else f"      ran as:  {run}\n"
                    print(
                        f"FAIL  {c.file}:{c.line}: {got}, expected {c.expect}\n"
                        f"      command: {shown}\n{ran}"
                        f"      stderr:\n{tail(err)}"
                        + (f"\n      stdout:\n{tail(out, 5)}" if out.strip() else "")
                    )
    for s in skipped:
        print(f"skip  {s}")
    if passed + failed == 0:
        print("FAIL  no peerconf example found in the given files")
        failed += 1
    print(f"doc-examples: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
