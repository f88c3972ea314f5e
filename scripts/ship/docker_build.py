#!/usr/bin/env python3
"""Runs the Dockerfile's build stage without a Docker engine.

    docker_build.py ROOT WORK [--stage build] [--list]

1. The build context: the files of ROOT that git knows (`git ls-files`,
   tracked and untracked but not ignored), filtered by ROOT/.dockerignore
   with Docker's rules (patterns in order, the last one that matches a path
   or one of its parent folders decides, `!` admits again, `*` and `?` stay
   within one path segment, `**` spans any number of them). Copied to
   WORK/context. `--list` prints the admitted paths and stops.
2. The stage named `--stage` (default `build`), instruction by instruction:
   ARG and FROM are noted, WORKDIR sets the folder, COPY copies from the
   context (only what the context holds: a file .dockerignore leaves out is
   an error here, as in `docker build`), RUN runs with `bash -c`. The
   image's filesystem root is WORK/root: absolute paths in WORKDIR, COPY
   destinations and RUN commands (`/src`, `/out`) are mapped into it.
   An ARG's default is in the environment of the RUN lines after it. A
   RUN's `--mount=type=cache` only keeps files between engine builds; here
   the build has no cache, like a first `docker build`.
   Any other instruction in the stage is an error, so nothing is skipped
   silently.

Exits non-zero, naming the instruction, when a step fails. The built files
stay in WORK/root (e.g. WORK/root/out/tracehop).
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys


def dockerignore_patterns(root):
    path = os.path.join(root, ".dockerignore")
    patterns = []
    if not os.path.exists(path):
        return patterns
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            admit = line.startswith("!")
            pattern = os.path.normpath(line[1:] if admit else line).lstrip("/")
            patterns.append((admit, pattern.split("/")))
    return patterns


def segments_match(pattern, path):
    """Whether the segments of `path` match `pattern` (`**` = any segments)."""
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return (
        bool(path)
        and fnmatch.fnmatchcase(path[0], pattern[0])
        and segments_match(pattern[1:], path[1:])
    )


def admitted(path, patterns):
    """Docker's rule: a path is excluded when the last pattern matching it,
    or matching one of its parent folders, excludes it."""
    segments = path.split("/")
    keep = True
    for admit, pattern in patterns:
        if any(segments_match(pattern, segments[:n]) for n in range(1, len(segments) + 1)):
            keep = admit
    return keep


def context_files(root):
    listed = subprocess.run(
        ["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    patterns = dockerignore_patterns(root)
    files = sorted(
        p for p in listed.split("\0") if p and os.path.isfile(os.path.join(root, p))
    )
    return [p for p in files if admitted(p, patterns)]


def stage_instructions(dockerfile, stage):
    """The instructions of the stage `FROM ... AS stage`, continuation lines joined."""
    with open(dockerfile, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    instructions, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            inside = re.search(r"\sAS\s+(\S+)$", line, re.IGNORECASE) is not None and (
                line.split()[-1] == stage
            )
            if inside:
                instructions.append((word, rest))
            continue
        if inside:
            instructions.append((word, rest))
    if not instructions:
        sys.exit(f"docker_build: no stage `{stage}` in {dockerfile}")
    return instructions


def in_root(root_fs, path):
    return os.path.join(root_fs, path.lstrip("/"))


def main():
    args = sys.argv[1:]
    listing = "--list" in args
    args = [a for a in args if a != "--list"]
    stage = "build"
    if "--stage" in args:
        i = args.index("--stage")
        stage = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    root, work = (os.path.abspath(a) for a in args)
    files = context_files(root)
    if listing:
        print("\n".join(files))
        return
    context = os.path.join(work, "context")
    root_fs = os.path.join(work, "root")
    for path in files:
        os.makedirs(os.path.dirname(os.path.join(context, path)), exist_ok=True)
        shutil.copy2(os.path.join(root, path), os.path.join(context, path))
    os.makedirs(root_fs, exist_ok=True)
    workdir = root_fs
    env = dict(os.environ)
    for word, rest in stage_instructions(os.path.join(root, "Dockerfile"), stage):
        print(f"docker_build: {word} {rest}", flush=True)
        if word == "FROM":
            continue
        if word == "ARG":
            name, has_default, default = rest.partition("=")
            if has_default:
                env[name.strip()] = default.strip().strip('"')
            continue
        if word == "WORKDIR":
            workdir = in_root(root_fs, rest) if rest.startswith("/") else os.path.join(workdir, rest)
            os.makedirs(workdir, exist_ok=True)
        elif word == "COPY":
            parts = rest.split()
            if any(p.startswith("--") for p in parts):
                sys.exit(f"docker_build: COPY flags are not emulated: {rest}")
            *sources, dest = parts
            target = in_root(root_fs, dest) if dest.startswith("/") else os.path.join(workdir, dest)
            for source in sources:
                origin = os.path.join(context, source)
                if not os.path.exists(origin):
                    sys.exit(f"docker_build: COPY {source}: not in the build context (.dockerignore)")
                if os.path.isdir(origin):
                    # `COPY dir dest` copies the folder's contents into dest.
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    into = target.endswith("/") or len(sources) > 1
                    os.makedirs(target if into else os.path.dirname(target) or ".", exist_ok=True)
                    shutil.copy2(origin, os.path.join(target, os.path.basename(source)) if into else target)
        elif word == "RUN":
            while rest.startswith("--mount=type=cache,"):
                rest = rest.split(None, 1)[1]
            if rest.startswith("--"):
                sys.exit(f"docker_build: RUN flags are not emulated: {rest}")
            # Absolute paths of the image (`/out`, `/src`) live under WORK/root.
            command = re.sub(r"(?<![\w./-])/(?=[a-z])", root_fs + "/", rest)
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command], cwd=workdir, env=env
            )
            if result.returncode != 0:
                sys.exit(f"docker_build: FAIL: RUN {rest} (exit {result.returncode})")
        else:
            sys.exit(f"docker_build: {word} is not emulated; extend scripts/ship/docker_build.py")
    print(f"docker_build: stage `{stage}` done in {root_fs}")


if __name__ == "__main__":
    main()
