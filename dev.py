#!/usr/bin/env python3
"""Bootstrap and run: ``python3 dev.py demo`` (the main job) or ``python3 dev.py test``.

Needs only Python 3.11 and a package index. Creates ``.venv`` and installs the project with the
pinned set in ``constraints.txt`` (again only when pyproject.toml or constraints.txt change).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".mediavault-install"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"mediavault needs Python 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing pinned dependencies (first run only) ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip==26.3"], check=False)
    quiet = {**os.environ, "PYTHONWARNINGS": "ignore"}  # setuptools' editable-install notice
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]"], check=True, env=quiet)
    STAMP.write_text(_fingerprint())


CHROMIUM = os.environ.get("MEDIAVAULT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_HELP = (
    "the browser tests need Chromium at {path}. On Debian or Ubuntu: sudo apt-get install -y chromium; "
    "elsewhere install Chromium and set MEDIAVAULT_CHROMIUM to its path "
    "(or run python3 dev.py test -m 'not browser' to leave those tests out)."
)


def ensure_chromium(pytest_args: list[str]) -> None:
    """The browser tests drive the system's Chromium: install Debian's package when it is missing
    and we can (root with apt-get), else stop with how to do it."""
    if Path(CHROMIUM).exists() or "not browser" in " ".join(pytest_args):
        return
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0 and CHROMIUM == "/usr/bin/chromium":
        print("installing Chromium for the browser tests (apt-get install chromium) ...", flush=True)
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update", "-qq"], env=quiet, check=False)
        subprocess.run([apt, "install", "-y", "-qq", "chromium"], env=quiet, check=False)
        if Path(CHROMIUM).exists():
            return
    sys.exit("error: " + CHROMIUM_HELP.format(path=CHROMIUM))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "mediavault"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        ensure_chromium(rest)
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        args = [str(BIN / "mediavault"), "demo", *rest]
    else:
        args = [str(BIN / "mediavault"), *rest]
    return subprocess.call(args, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
