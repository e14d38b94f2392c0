"""The Kubernetes objects the harnesses run: kustomize builds, lookups, and the peerconf image's
ENTRYPOINT and USER as the Dockerfile declares them (what a container of that image runs, and as
whom, when the manifest does not say)."""

import json
import re
from collections import namedtuple
from pathlib import Path

import yaml

from harness import check
from harness.proc import run

Image = namedtuple("Image", "entrypoint uid gid")


def load_docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path):
    return load_docs(run(["kubectl", "kustomize", path], timeout=60).stdout)


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def find(docs, kind, name=None):
    """The one object of that kind (and name); Failure unless there is exactly one."""
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    check(len(found) == 1, f"expected exactly one {kind} {name or ''} in the built manifests, found {len(found)}")
    return found[0]


def image_from_dockerfile(repo: Path):
    """ENTRYPOINT and numeric USER uid[:gid] of the Dockerfile's final stage."""
    final = (Path(repo) / "Dockerfile").read_text().split("\nFROM ")[-1]
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", final, re.M)
    check(entry is not None, "Dockerfile: no ENTRYPOINT [...] in the final stage")
    user = re.search(r"^USER\s+(\d+)(?::(\d+))?\s*$", final, re.M)
    check(user is not None, "Dockerfile: no numeric USER in the final stage")
    uid = int(user.group(1))
    return Image(json.loads(entry.group(1)), uid, int(user.group(2) or uid))
