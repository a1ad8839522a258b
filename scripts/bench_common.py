"""Shared helpers for scripts/bench-gang and scripts/bench-overhead (stdlib only).

Not a command: imported by the bench scripts, which live next to it.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def find_gang(prog):
    """Returns ${GANG:-build/gang}, running scripts/setup first if it is missing."""
    gang = os.environ.get("GANG") or os.path.join(ROOT, "build", "gang")
    if not os.path.isabs(gang):
        gang = os.path.join(os.getcwd() if os.environ.get("GANG") else ROOT, gang)
    if not os.access(gang, os.X_OK):
        print(f"{prog}: {gang} missing; running scripts/setup", file=sys.stderr)
        subprocess.run([os.path.join(HERE, "setup")], check=True, stdout=subprocess.DEVNULL)
    if not os.access(gang, os.X_OK):
        sys.exit(f"{prog}: no gang binary at {gang}; set GANG=path")
    return gang


class TempDirs:
    """Fresh temporary directories, one per run; all deleted at the end only
    (creating many files soon after deleting many is slow on these disks)."""

    def __init__(self, base=None, keep=False):
        self.base = base
        self.keep = keep
        self.dirs = []

    def new(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix, dir=self.base)
        self.dirs.append(d)
        return d

    def new_in(self, base, prefix):
        """A fresh directory under BASE (another file system, say)."""
        d = tempfile.mkdtemp(prefix=prefix, dir=base)
        self.dirs.append(d)
        return d

    def cleanup(self):
        if self.keep:
            print(f"kept: {' '.join(self.dirs)}")
            return
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def gen_definitions(out, chunks, shape, sleep, seed=1, extra=()):
    """Runs scripts/gen-definitions into OUT; returns the target's absolute path."""
    cmd = [os.path.join(HERE, "gen-definitions"), out, "--chunks", str(chunks),
           "--shape", shape, "--sleep", repr(float(sleep)), "--seed", str(seed), *extra]
    rel = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(out, rel)


def show(gang, target):
    """`gang show TARGET --json`, parsed."""
    out = subprocess.run([gang, "show", target, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def root_component(components):
    """The component nothing build-depends on (the target)."""
    used = {d for c in components for d in c["build_depends"]}
    roots = [c for c in components if c["name"] not in used]
    if len(roots) != 1:
        sys.exit(f"bench: expected one root component, found {[c['name'] for c in roots]}")
    return roots[0]


def cache_ls(gang, cache):
    out = subprocess.run([gang, "cache", "ls", "--cache", cache, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def run_build(gang, target, cache, instances, max_jobs=1, seed=None, log=None):
    """Runs `gang build`; returns (start unix s, end unix s, wall s, stdout text).
    Exits the script if the build fails."""
    cmd = [gang, "build", target, "--cache", cache, "--instances", str(instances),
           "--max-jobs", str(max_jobs)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if log:
        cmd += ["--log", log]
    t0 = time.time()
    p0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - p0
    t1 = time.time()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return t0, t1, wall, proc.stdout


def median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
