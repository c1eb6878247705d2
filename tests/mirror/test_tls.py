"""``rediss://``: the mirror and its readers over TLS, against a redis-server started with
TLS (Debian's build has it), with a certificate made for the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import FleetView, RedisMirror

from .fake_client import FakeClient
from .helpers import eventually
from .redis_server import RedisServer, free_port, require_server


def certificate(directory: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is missing, and CI must run the TLS test")
        pytest.skip("openssl is needed to make the test's certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    return str(cert), str(key)


async def test_a_tls_url_works(io_loop: Any, tmp_path: Path) -> None:
    executable = require_server()
    cert, key = certificate(tmp_path)
    tls_port = free_port()
    server = RedisServer(executable, ["--tls-port", str(tls_port), "--tls-cert-file", cert,
                                      "--tls-key-file", key, "--tls-ca-cert-file", cert,
                                      "--tls-auth-clients", "no"])
    server.start()  # ready once its plain port answers; the test uses the TLS one
    url = f"rediss://127.0.0.1:{tls_port}/0"
    options = {"ssl_ca_certs": cert}
    sensor = Sensor(SensorType.FLOAT, "s", "A sensor.")
    sensor.set(1.0, Sensor.NOMINAL, 2.5)
    mirror = RedisMirror(url, ["dev"], fair=False, lease=1.0, redis_options=options)
    mirror.add("dev", FakeClient([sensor]))  # type: ignore[arg-type]
    view = FleetView(url, redis_options=options)
    try:
        assert view.redis.connection_pool.connection_class.__name__ == "SSLConnection"
        await mirror.start()

        async def written() -> Any:
            return await view.reading("dev", "s")
        reading = await eventually(written, what="the reading over TLS")
        assert reading.value == 2.5
    finally:
        await view.close()
        await mirror.stop()
        server.close()
