"""Run import-linter (`lint-imports`, contracts in pyproject.toml) on the `nirbridge` namespace as installed.

    python scripts/lint_imports.py [lint-imports options]        (make lint runs it)

import-linter's graph builder (grimp) finds a package with `importlib.util.find_spec` and walks its one
directory, so it sees `nirbridge/` only: the folders pyproject's package-dir maps into the namespace
(connector/ -> nirbridge.connector, workers/, engine/ ...) live beside it, and a plain `lint-imports` answers
"Module 'nirbridge.workers' does not exist". This script builds that namespace as a tree of symbolic links in
a temporary folder, read from the same package-dir table (nothing to keep in step by hand), and runs
`lint-imports` with the folder first on PYTHONPATH. The links point at the working tree: what is checked is
what is on disk now.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"__pycache__"}


def package_dirs(pyproject: Path) -> dict[str, Path]:
    """{"nirbridge.connector": <repo>/connector, ...}: [tool.setuptools.package-dir], shortest names first."""
    table = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    return {name: (pyproject.parent / folder).resolve() for name, folder in sorted(table.items())}


def build_namespace(into: Path, mapping: dict[str, Path]) -> None:
    """The packages of `mapping` as links under `into`: the root package a real folder of links to its
    files, every other package a link to its folder (unless the link of a package above already reaches it:
    "nirbridge.workers.train" = "workers/train")."""
    roots = [name for name in mapping if "." not in name]
    for root in roots:
        folder = into / root
        folder.mkdir()
        for entry in mapping[root].iterdir():
            if entry.name not in SKIP:
                (folder / entry.name).symlink_to(entry)
    for name, source in mapping.items():
        if name in roots:
            continue
        link = into.joinpath(*name.split("."))
        if link.exists():
            if link.resolve() != source:
                raise SystemExit(f"package-dir: {name} -> {source}, but {link} already is {link.resolve()}")
            continue
        link.symlink_to(source, target_is_directory=True)


def main(argv: list[str]) -> int:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="nirbridge-imports-") as scratch:
        build_namespace(Path(scratch), package_dirs(ROOT / "pyproject.toml"))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [scratch, env.get("PYTHONPATH")]))
        # lint-imports puts its working folder first on sys.path: run it in the namespace's folder, so that
        # `nirbridge` is found there and not as the checkout's nirbridge/, and name the configuration
        if not any(arg.endswith((".toml", ".ini", ".cfg")) for arg in argv):
            argv = [*argv, str(ROOT / "pyproject.toml")]
        # --no-cache: the cache would record the temporary folder's paths
        return subprocess.call([str(lint_imports), "--no-cache", *argv], cwd=scratch, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
