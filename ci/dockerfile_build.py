#!/usr/bin/env python3
"""Runs the Dockerfile's build stage on this machine, without a Docker engine, and prints the path
of the file the final stage copies into the image.

    dockerfile_build.py --arch amd64|arm64 --workdir DIR [--dockerfile Dockerfile] [--context .]

No Docker engine runs in CI, but the build stage is only shell steps on a Rust toolchain, which
this machine has. So the steps run here verbatim, in order: ARG/ENV set the environment (with
TARGETARCH=--arch), WORKDIR maps to --workdir, COPY copies from the context exactly what
.dockerignore lets through (keeping mtimes, as COPY does), RUN runs under `/bin/sh -c`. RUN steps
must use paths under WORKDIR only, so they cannot touch this machine outside --workdir. Any other
instruction in the build stage is an error, so the simulation never silently skips a step. The
workdir starts empty but for its target/ directory, which persists like a BuildKit cache. When
the Dockerfile, the arch and every file the COPY steps take are unchanged since the last run, the
previous result is reused, as Docker's layer cache would.

Checks the final stage's shape on the way: FROM scratch, a COPY --from=<build stage> of one file,
USER, ENTRYPOINT. Progress goes to stderr; stdout gets only the built file's path.
"""

import argparse
import fnmatch
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log(f"FAIL  {msg}")
    sys.exit(1)


def instructions(path):
    """(keyword, text) pairs: continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.lstrip().startswith("#"):
            continue  # comments, also between continuation lines (as Docker does)
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            kw, _, rest = buf.strip().partition(" ")
            out.append((kw.upper(), rest.strip()))
        buf = ""
    return out


def stages(instrs):
    result, current = [], None
    for kw, rest in instrs:
        if kw == "FROM":
            words = rest.split()
            name = words[words.index("AS") + 1] if "AS" in words else (
                words[words.index("as") + 1] if "as" in words else str(len(result)))
            image = [w for w in words if not w.startswith("--")][0]
            current = {"name": name, "image": image, "steps": []}
            result.append(current)
        elif current is None:
            if kw != "ARG":
                die(f"{kw} before the first FROM")
        else:
            current["steps"].append((kw, rest))
    return result


def ignore_patterns(context):
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    pats = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            pats.append((neg, os.path.normpath(line.lstrip("!")).lstrip("/")))
    return pats


def excluded(rel, pats):
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, pat in pats:
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            result = not neg
    return result


def copy(rest, context, workdir, pats, env):
    words = shlex.split(rest)
    if any(w.startswith("--") for w in words):
        die(f"COPY {rest}: flags are not simulated")
    *sources, dest = words
    dest_path = os.path.join(workdir, os.path.normpath(dest))
    into_dir = dest.endswith("/") or len(sources) > 1
    for src in sources:
        rel = os.path.normpath(src)
        if excluded(rel, pats):
            die(f"COPY {src}: .dockerignore excludes it, so the real build would fail")
        spath = os.path.join(context, rel)
        if os.path.isdir(spath):
            target = dest_path
            for dirpath, dirnames, filenames in os.walk(spath):
                drel = os.path.relpath(dirpath, context)
                dirnames[:] = [d for d in dirnames if not excluded(os.path.normpath(os.path.join(drel, d)), pats)]
                for f in filenames:
                    frel = os.path.normpath(os.path.join(drel, f))
                    if excluded(frel, pats):
                        continue
                    out = os.path.join(target, os.path.relpath(os.path.join(dirpath, f), spath))
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    shutil.copy2(os.path.join(dirpath, f), out)
        else:
            out = os.path.join(dest_path, os.path.basename(rel)) if into_dir else dest_path
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(spath, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=["amd64", "arm64"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dockerfile", default="Dockerfile")
    ap.add_argument("--context", default=".")
    opts = ap.parse_args()
    context = os.path.abspath(opts.context)
    all_stages = stages(instructions(os.path.join(context, opts.dockerfile)))
    final = all_stages[-1]

    # The final stage: FROM scratch, one binary copied from the build stage.
    if final["image"] != "scratch":
        die(f"the final stage is FROM {final['image']}, not scratch")
    copies = [r for k, r in final["steps"] if k == "COPY"]
    if len(copies) != 1 or not copies[0].startswith("--from="):
        die("the final stage must COPY exactly one file --from the build stage")
    from_name, src, dst = re.fullmatch(r"--from=(\S+)\s+(\S+)\s+(\S+)", copies[0]).groups()
    kinds = {k for k, _ in final["steps"]}
    if not {"USER", "ENTRYPOINT"} <= kinds or kinds - {"ARG", "LABEL", "COPY", "USER", "ENTRYPOINT", "CMD"}:
        die(f"the final stage has {sorted(kinds)}; expected ARG/LABEL/COPY/USER/ENTRYPOINT/CMD only")
    build = next((s for s in all_stages if s["name"] == from_name), None)
    if build is None:
        die(f"COPY --from={from_name}: no such stage")
    log(f"      Dockerfile build stage '{from_name}' (FROM {build['image']}), TARGETARCH={opts.arch}")

    pats = ignore_patterns(context)
    digest = hashlib.sha256(open(os.path.join(context, opts.dockerfile), "rb").read() + opts.arch.encode())
    for kw, rest in build["steps"]:
        if kw != "COPY":
            continue
        for source in shlex.split(rest)[:-1]:
            top = os.path.join(context, source)
            files = [top] if os.path.isfile(top) else sorted(
                os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)
            for path in files:
                rel = os.path.normpath(os.path.relpath(path, context))
                if not excluded(rel, pats):
                    digest.update(rel.encode() + b"\0" + open(path, "rb").read())
    workdir = os.path.abspath(opts.workdir)
    stamp = os.path.join(workdir, "target", ".dockerfile-build-inputs")
    if os.path.exists(stamp) and open(stamp).read() == digest.hexdigest() and os.path.isfile(
            os.path.join(workdir, "target", ".dockerfile-build-result")):
        result = open(os.path.join(workdir, "target", ".dockerfile-build-result")).read()
        if os.path.isfile(result):
            log(f"      inputs unchanged since the last build: reusing {result} (as Docker's layer cache would)")
            print(result)
            return

    workdir_image = None
    os.makedirs(workdir, exist_ok=True)
    for entry in os.listdir(workdir):  # a fresh stage, but for the cargo cache
        if entry != "target":
            p = os.path.join(workdir, entry)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    env = {k: v for k, v in os.environ.items()
           if k not in {"CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTFLAGS",
                        "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"}}
    for kw, rest in build["steps"]:
        if kw == "ARG":
            name, _, default = rest.partition("=")
            env[name] = opts.arch if name == "TARGETARCH" else default
        elif kw == "ENV":
            words = shlex.split(rest)
            if all("=" in w for w in words):
                env.update(w.split("=", 1) for w in words)
            else:
                env[words[0]] = " ".join(words[1:])
        elif kw == "WORKDIR":
            workdir_image = os.path.normpath(rest)
        elif kw == "COPY":
            if workdir_image is None:
                die("COPY before WORKDIR")
            log(f"      COPY {rest}")
            copy(rest, context, workdir, pats, env)
        elif kw == "RUN":
            if workdir_image is None:
                die("RUN before WORKDIR")
            if re.search(r"(^|[\s\"'=>])/(?!dev/null)", rest):
                die(f"RUN uses an absolute path; keep build steps under WORKDIR: {rest[:120]}")
            first = " ".join(rest.split())[:100]
            log(f"      RUN {first}...")
            started = time.monotonic()
            r = subprocess.run(["/bin/sh", "-c", rest], cwd=workdir, env=env, stdout=sys.stderr)
            if r.returncode != 0:
                die(f"RUN failed with exit {r.returncode}: {first}")
            log(f"      ... {time.monotonic() - started:.1f} s")
        else:
            die(f"{kw} in the build stage is not simulated; extend ci/dockerfile_build.py")
    if not src.startswith(workdir_image + "/"):
        die(f"COPY --from={from_name} {src}: not under WORKDIR {workdir_image}")
    built = os.path.join(workdir, os.path.relpath(src, workdir_image))
    if not os.path.isfile(built):
        die(f"the build stage did not produce {src}")
    log(f"      the image's {dst} = {src} of the build stage = {built}")
    with open(os.path.join(workdir, "target", ".dockerfile-build-result"), "w") as f:
        f.write(built)
    with open(stamp, "w") as f:
        f.write(digest.hexdigest())
    print(built)


if __name__ == "__main__":
    main()
