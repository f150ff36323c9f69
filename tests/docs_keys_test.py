#!/usr/bin/env python3
"""The documentation stays true to the code: every config key `braid config check` prints for an
empty config is documented in docs/config.md (as `section.key`), and every relative link in the
repository's markdown files resolves to a file or directory of the repository.

Usage: docs_keys_test.py BRAID SOURCE_DIR
"""
import os
import re
import subprocess
import sys
import tempfile


def config_keys(braid):
    """section.key for every key of the resolved default config."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as empty:
        resolved = subprocess.run([braid, "config", "check", empty.name], capture_output=True,
                                  text=True, check=True).stdout
    keys, section = [], None
    for line in resolved.splitlines():
        if re.match(r"^[a-z_]+:\s*$", line):
            section = line.rstrip(":").strip()
        elif (m := re.match(r"^  ([a-z_]+):", line)) and section:
            keys.append(f"{section}.{m.group(1)}")
    return keys


def markdown_files(src):
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("build")]
        for name in files:
            if name.endswith(".md"):
                yield os.path.join(root, name)


def broken_links(src):
    for path in markdown_files(src):
        text = open(path, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same file
            file = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
            if not file.startswith(os.path.normpath(src) + os.sep):
                yield f"{os.path.relpath(path, src)}: {target} points outside the repository"
            elif not os.path.exists(file):
                yield f"{os.path.relpath(path, src)}: {target} does not exist"


def main():
    braid, src = sys.argv[1], os.path.realpath(sys.argv[2])
    failures = []
    documented = open(os.path.join(src, "docs", "config.md"), encoding="utf-8").read()
    keys = config_keys(braid)
    if len(keys) < 50:
        failures.append(f"only {len(keys)} keys parsed from `braid config check`")
    failures += [f"docs/config.md does not document `{k}`" for k in keys
                 if f"`{k}`" not in documented]
    links = list(broken_links(src))
    failures += links
    print(f"{len(keys)} config keys checked against docs/config.md; relative links checked in "
          f"{len(list(markdown_files(src)))} markdown files")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
