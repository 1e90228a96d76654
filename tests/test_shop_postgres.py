"""The example shop runs on PostgreSQL as well as SQLite (DATABASE_URL)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from examples.shop.app import create_app as create_shop_app
from examples.shop.settings import ShopSettings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server in a temporary directory, on a free loopback port."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql")
    # PostgreSQL refuses to run as root; run it as the postgres account then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="shop-pg-"))
    if as_user:
        shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=60)

    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "shop", "--auth=trust")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://shop@127.0.0.1:{port}/postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_checkout_works_on_postgresql(postgres_url: str) -> None:
    """Signup, cart and a paid checkout work with DATABASE_URL naming PostgreSQL."""
    with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=1)) as payments:
        settings = ShopSettings(
            database_url=postgres_url,
            payments_primary_url=f"{payments.url}/primary",
            payments_fallback_url=f"{payments.url}/fallback",
            password_iterations=1000,
        )
        with TestClient(create_shop_app(settings)) as client:
            token = client.post("/api/signup", json={"email": "pg@example.com", "password": "long enough", "name": "P"})
            auth = {"Authorization": f"Bearer {token.json()['token']}"}
            assert client.post("/api/cart/items", json={"product_id": 2, "quantity": 3}, headers=auth).status_code == 201
            stock = client.get("/api/products/2").json()["stock"]
            order = client.post("/api/checkout", json={"card_token": "tok_visa"}, headers=auth)
            assert order.status_code == 201 and order.json()["status"] == "paid"
            assert client.get("/api/products/2").json()["stock"] == stock - 3
