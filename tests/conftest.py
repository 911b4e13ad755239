"""Shared fixtures: real servers on loopback (moto S3, SecantusDB), never in-process fakes."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as settings_profiles

from mediavault.settings import MediavaultSettings, S3Options
from mediavault.vault import LocalVault, Vault
from mediavault.vault.s3 import S3Vault, make_s3_client

logging.getLogger("werkzeug").setLevel(logging.WARNING)

# Property, fuzz, stress and fault tests: short and seeded in CI and by default; long by hand with
# MEDIAVAULT_HARDENING=long (see the README).
# Nothing here can reach Prefect's telemetry host; the test servers must not try.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
LONG_HARDENING = os.environ.get("MEDIAVAULT_HARDENING") == "long"
settings_profiles.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings_profiles.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings_profiles.load_profile("long" if LONG_HARDENING else "ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long hardening runs outlast the default per-test timeout."""
    if LONG_HARDENING:
        for item in items:
            if item.get_closest_marker("hardening"):
                item.add_marker(pytest.mark.timeout(4 * 3600))


def hardening_scale(short: float, long: float) -> float:
    """A bound (seconds, steps, processes) for stress tests: short in CI, long by hand."""
    return long if LONG_HARDENING else short


FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "real"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3 API served over HTTP on loopback by moto's ThreadedMotoServer."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("MOTO_S3_DEFAULT_MAX_KEYS", "1000")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(moto_endpoint: str) -> S3Options:
    return moto_options(moto_endpoint)


def moto_options(endpoint: str) -> S3Options:
    """Client options for the moto server (also for fixtures wider than one test)."""
    return S3Options(
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing-secret",
        path_style=True,
        checksum_mode="when_required",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
        max_concurrency=4,
        max_attempts=2,
    )


@pytest.fixture
def s3_bucket(s3_options: S3Options) -> str:
    name = f"vault-{uuid.uuid4().hex[:12]}"
    make_s3_client(s3_options).create_bucket(Bucket=name)
    return name


# botocore's ``retries.max_attempts`` (S3Options.max_attempts, 2 in tests) counts retries: a request
# is sent up to 3 times, so a fault on 3 consecutive requests is one botocore gives up on.
GIVE_UP = 3
PROXIED_READ_TIMEOUT = 3.0


@pytest.fixture
def fault_proxy(moto_endpoint: str):
    """A fault-injecting proxy in front of moto (tests/fault_proxy.py); ``.endpoint`` is its URL."""
    from tests.fault_proxy import FaultProxy

    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def proxied_options(s3_options: S3Options, fault_proxy) -> S3Options:
    """S3Options that reach moto through the fault proxy."""
    assert s3_options.max_attempts + 1 == GIVE_UP
    return s3_options.model_copy(
        update={
            "endpoint_url": fault_proxy.endpoint,
            "read_timeout": PROXIED_READ_TIMEOUT,
            "conflict_backoff_seconds": 0.01,
        }
    )


@pytest.fixture(params=["local", "s3"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Vault:
    """Every vault backend; tests using it form the conformance suite."""
    if request.param == "local":
        return LocalVault(tmp_path / "vault")
    options = request.getfixturevalue("s3_options")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Vault(bucket, "prefix/for/tests", options)


@pytest.fixture
def settings_for(tmp_path: Path):
    """Settings pointing at a given vault, with MongoDB disabled unless a URL is passed."""

    def build(vault: Vault, mongo_url: str | None = None, **extra) -> MediavaultSettings:
        s3 = vault.options if isinstance(vault, S3Vault) else S3Options()
        return MediavaultSettings(
            home=tmp_path / "home",
            vault_url=vault.url,
            s3=s3,
            mongo_mode="external" if mongo_url else "disabled",
            mongo_url=mongo_url,
            **extra,
        )

    return build


@pytest.fixture
def real_fixture(tmp_path: Path):
    """Copy a real fixture file into a writable temp dir and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / "inputs" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / name, target)
        return target

    return copy


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SecantusDB server (MongoDB wire protocol) on loopback, started by the product's launcher,
    or the MongoDB that MEDIAVAULT_TEST_MONGO_URL names."""
    from mediavault.index import embedded

    if os.environ.get("MEDIAVAULT_TEST_MONGO_URL"):
        yield os.environ["MEDIAVAULT_TEST_MONGO_URL"]  # a real MongoDB, e.g. in the integration workflow
        return
    base = tmp_path_factory.mktemp("secantus")
    server = embedded.ensure_running(base)
    yield server.url
    embedded.stop(base)


@pytest.fixture
def mongo_db(mongo_url: str):
    from pymongo import MongoClient

    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect API (prefect_test_harness starts a real local server)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def fake_solr() -> Iterator:
    """The Solr HTTP-contract stand-in on loopback (see tests/fake_solr.py)."""
    from tests.fake_solr import FakeSolr

    server = FakeSolr().start()
    yield server
    server.stop()


SEARCH_BACKENDS = ["tantivy", "solr-cloud", "solr-standalone"]
if os.environ.get("MEDIAVAULT_TEST_SOLR_URL"):
    SEARCH_BACKENDS.append("solr-real")


@pytest.fixture(params=SEARCH_BACKENDS)
def search_index(request: pytest.FixtureRequest, tmp_path: Path):
    """Every search backend; tests using it form the search conformance suite.

    ``solr-real`` runs when MEDIAVAULT_TEST_SOLR_URL points at a Solr with the shipped configset
    (MEDIAVAULT_TEST_SOLR_MODE=cloud|standalone, default cloud)."""
    from mediavault.search.solr_index import SolrSearchIndex
    from mediavault.search.tantivy_index import TantivySearchIndex

    if request.param == "tantivy":
        yield TantivySearchIndex(tmp_path / "tantivy")
        return
    name = f"mvtest{uuid.uuid4().hex[:8]}"
    if request.param == "solr-real":
        mode = os.environ.get("MEDIAVAULT_TEST_SOLR_MODE", "cloud")
        index = SolrSearchIndex(os.environ["MEDIAVAULT_TEST_SOLR_URL"], name=name, mode=mode)
        yield index
        for generation in index.generations():
            with contextlib.suppress(Exception):
                index.drop_generation(generation)
        return
    server = request.getfixturevalue("fake_solr")
    yield SolrSearchIndex(server.url, name=name, mode=request.param.removeprefix("solr-"), retries=2)
