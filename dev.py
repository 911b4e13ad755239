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
FIREFOX = os.environ.get("MEDIAVAULT_FIREFOX", "/usr/bin/firefox-esr")
# (path, Debian package, environment variable that points elsewhere)
BROWSERS = ((CHROMIUM, "chromium", "MEDIAVAULT_CHROMIUM"), (FIREFOX, "firefox-esr", "MEDIAVAULT_FIREFOX"))
BROWSER_HELP = (
    "the browser tests need {missing}. On Debian or Ubuntu: sudo apt-get install -y {packages}; "
    "elsewhere install them and set {variables} to their paths "
    "(or run python3 dev.py test -m 'not browser' to leave those tests out)."
)


def apt_install(packages: list[str], what: str) -> bool:
    """Install Debian packages when we can (root with apt-get); False when we cannot."""
    apt = shutil.which("apt-get")
    if not (apt and hasattr(os, "geteuid") and os.geteuid() == 0):
        return False
    print(f"installing {what}: apt-get install {' '.join(packages)} ...", flush=True)
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], env=quiet, check=False)
    subprocess.run([apt, "install", "-y", "-qq", *packages], env=quiet, check=False)
    return True


LUCENE_JARS = Path(os.environ.get("MEDIAVAULT_LUCENE_JARS", "/usr/share/java"))


def _lucene_missing() -> list[str]:
    missing = [] if any(LUCENE_JARS.glob("lucene-core-*.jar")) else ["liblucene8-java"]
    return missing + ([] if shutil.which("java") and shutil.which("javac") else ["default-jdk-headless"])


def ensure_lucene() -> None:
    """The Solr tests check the shipped configset with real Lucene (tests/lucene_oracle): install
    Debian's Lucene jars and a JDK when they are missing and we can."""
    missing = _lucene_missing()
    if missing and "MEDIAVAULT_LUCENE_JARS" not in os.environ:
        apt_install(missing, "the Lucene oracle")
        missing = _lucene_missing()
    if missing:
        print(
            "warning: the Solr tests need Lucene's jars, java and javac: "
            f"apt-get install -y {' '.join(missing)} "
            "(or set MEDIAVAULT_LUCENE_JARS to a folder of Lucene 8 jars)",
            file=sys.stderr,
        )


def ensure_browsers(pytest_args: list[str]) -> None:
    """The browser tests drive the system's Chromium and Firefox: install Debian's packages when
    they are missing and we can (root with apt-get), else stop with how to do it."""
    if "not browser" in " ".join(pytest_args):
        return
    missing = [browser for browser in BROWSERS if not Path(browser[0]).exists()]
    if not missing:
        return
    default = all(path == f"/usr/bin/{package}" for path, package, _ in missing)
    if default and apt_install([package for _, package, _ in missing], "the test browsers"):
        missing = [browser for browser in missing if not Path(browser[0]).exists()]
        if not missing:
            return
    sys.exit(
        "error: "
        + BROWSER_HELP.format(
            missing=" and ".join(path for path, _, _ in missing),
            packages=" ".join(package for _, package, _ in missing),
            variables=" / ".join(variable for _, _, variable in missing),
        )
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "mediavault"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        ensure_browsers(rest)
        ensure_lucene()
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        args = [str(BIN / "mediavault"), "demo", *rest]
    else:
        args = [str(BIN / "mediavault"), *rest]
    return subprocess.call(args, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
