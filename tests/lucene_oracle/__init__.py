"""The Lucene oracle: real Lucene analysis of the shipped Solr schema, for tests.

``AnalyzeServer.java`` reads ``deployments/solr/mediavault/conf/schema.xml`` and builds every text
``fieldType``'s analyzers with ``CustomAnalyzer`` from the very factory classes the schema names
(``solr.StandardTokenizerFactory`` -> Lucene's ``StandardTokenizerFactory``). It is compiled with
``javac`` into a cache directory keyed by the hash of its source and the jars, started once per
test process, and asked over stdin/stdout: field type + text -> tokens with positions and offsets.

The jars come from Debian's ``liblucene8-java`` (in /usr/share/java; Debian 12 ships Lucene 8.8.1
under jar names ending in 8.7.0; set MEDIAVAULT_LUCENE_JARS to use another directory). Only
lucene-core and the analysis-common module are put on the class path: the schema uses no factory
from another module. Production runs Solr 9 (Lucene 9.x): see docs/architecture.md for what may
differ. Without java or the jars the tests that need the oracle
fail (never skip) with what to install.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "AnalyzeServer.java"
SCHEMA = ROOT / "deployments" / "solr" / "mediavault" / "conf" / "schema.xml"
INSTALL = "apt-get install -y liblucene8-java default-jdk-headless"
# Lucene 8 names the analysis module analyzers-common, Lucene 9 analysis-common.
JAR_PATTERNS = (("lucene-core-*.jar",), ("lucene-analyzers-common-*.jar", "lucene-analysis-common-*.jar"))


class OracleUnavailable(RuntimeError):
    """java, javac or the Lucene jars are missing, or the oracle could not start."""


class Token(NamedTuple):
    term: str
    position: int
    start: int
    end: int
    type: str
    length: int


def _jars() -> list[Path]:
    folder = Path(os.environ.get("MEDIAVAULT_LUCENE_JARS", "/usr/share/java"))
    found = []
    for patterns in JAR_PATTERNS:
        matches = sorted(p for pattern in patterns for p in folder.glob(pattern))
        if not matches:
            raise OracleUnavailable(
                f"the Lucene oracle needs {' or '.join(patterns)} in {folder}; install them with: "
                f"{INSTALL} (or point MEDIAVAULT_LUCENE_JARS at a directory holding Lucene's jars)"
            )
        found.append(matches[-1])
    return found


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise OracleUnavailable(f"the Lucene oracle needs `{name}` on PATH; install it with: {INSTALL}")
    return path


def compiled() -> tuple[Path, str]:
    """(directory holding AnalyzeServer.class, class path); compiled once per source and jar set."""
    jars = _jars()
    classpath = os.pathsep.join(str(j) for j in jars)
    key = hashlib.sha256(SOURCE.read_bytes() + classpath.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"mediavault-lucene-oracle-{key}"
    if not (target / "AnalyzeServer.class").exists():
        work = Path(tempfile.mkdtemp(prefix="lucene-oracle-build-"))
        result = subprocess.run(
            [_tool("javac"), "-encoding", "UTF-8", "-cp", classpath, "-d", str(work), str(SOURCE)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise OracleUnavailable(f"javac failed on {SOURCE}:\n{result.stderr}")
        try:
            os.replace(work, target)  # atomic: a concurrent build of the same key wins or loses whole
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
    return target, classpath + os.pathsep + str(target)


class LuceneOracle:
    """One AnalyzeServer process answering analysis requests for one schema.xml."""

    def __init__(self, schema: Path = SCHEMA) -> None:
        _, classpath = compiled()
        self.schema = schema
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [
                _tool("java"),
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                classpath,
                "AnalyzeServer",
                str(schema),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        ready = json.loads(self._line())
        if "error" in ready:
            self.close()
            raise OracleUnavailable(ready["error"])
        self.lucene_version: str = ready["lucene"]
        self.type_classes: dict[str, str] = ready["types"]

    def _line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            stderr = self._process.stderr.read() if self._process.stderr else ""
            raise OracleUnavailable(f"the Lucene oracle exited (code {self._process.poll()}): {stderr}")
        return line

    def analyze(self, field_type: str, text: str, side: str = "index") -> list[Token]:
        """The tokens Lucene produces for ``text`` with ``field_type``'s index or query analyzer."""
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        with self._lock:
            assert self._process.stdin is not None
            self._process.stdin.write(f"{side}\t{field_type}\t{encoded}\n")
            self._process.stdin.flush()
            reply = json.loads(self._line())
        if "error" in reply:
            raise ValueError(f"Lucene oracle: {reply['error']}")
        return [Token(*item) for item in reply["tokens"]]

    def terms(self, field_type: str, text: str, side: str = "index") -> list[str]:
        return [token.term for token in self.analyze(field_type, text, side)]

    def close(self) -> None:
        if self._process.poll() is None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream:
                stream.close()


_shared: dict[Path, LuceneOracle] = {}
_shared_lock = threading.Lock()


def shared_oracle(schema: Path = SCHEMA) -> LuceneOracle:
    """The process-wide oracle for ``schema`` (started on first use, stopped at exit)."""
    with _shared_lock:
        if schema not in _shared:
            _shared[schema] = LuceneOracle(schema)
            atexit.register(_shared[schema].close)
        return _shared[schema]


def require_oracle() -> LuceneOracle:
    """The shared oracle, or a test failure (never a skip) saying what to install."""
    try:
        return shared_oracle()
    except OracleUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def lucene_oracle() -> Iterator[LuceneOracle]:
    """The oracle for the shipped schema (import this fixture into a test module to use it)."""
    yield require_oracle()
