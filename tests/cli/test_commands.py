"""The command as a whole: --help, --version, the console script, running without rich, and
``sim`` serving a device that answers ``?watchdog`` and then ``?halt``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from katcp_inspect import __version__

from .helpers import CLI, ENV

COMMANDS = ("demo", "inspect", "watch", "request", "fleet", "sim")


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, check=False)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_with_examples(command: str | None) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout
    assert "exit codes:" in result.stdout
    assert "katcp-inspect" in result.stdout
    if command is None:
        for name in COMMANDS:
            assert name in result.stdout


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"katcp-inspect {__version__}")


def test_console_script() -> None:
    script = shutil.which("katcp-inspect", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the katcp-inspect script is not installed (pip install -e .)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True,
                            timeout=20, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"katcp-inspect {__version__}")


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_bad_arguments_are_usage_errors() -> None:
    result = run("inspect", "no-port-here")
    assert result.returncode == 2
    assert "expected HOST:PORT" in result.stderr
    result = run("watch", "127.0.0.1:1", "--strategy", "sometimes")
    assert result.returncode == 2
    assert result.stderr.strip() == ("katcp-inspect: unknown strategy 'sometimes'; use one of "
                                     "none, auto, event, period, differential, event-rate, "
                                     "differential-rate")


def test_python_dash_m_is_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "katcp_inspect", "--version"],
                            capture_output=True, text=True, env=ENV, timeout=20, check=True)
    assert result.stdout.startswith("katcp-inspect ")


def test_the_library_does_not_import_rich() -> None:
    code = ("import sys, katcp_inspect, katcp_inspect.testing, katcp_inspect.cli, "
            "katcp_inspect.cli.formatting; print('rich' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=20, check=True)
    assert result.stdout.strip() == "False"


@contextlib.contextmanager
def sim_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``katcp-inspect sim ARGS``, killed and its pipes closed however the test ends."""
    process = subprocess.Popen([*CLI, "sim", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_sim_serves_until_halt() -> None:
    with sim_process("--port", "0", "--sensors", "5", "--rate", "0",
                     "--protocol", "5.0") as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(KATCP 5\.0-MI, 5 sensors", line)
        assert match, line
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5) as sock:
            reader = sock.makefile("rb")
            assert reader.readline() == b"#version-connect katcp-protocol 5.0-MI\n"
            sock.sendall(b"?watchdog\n")
            assert b"!watchdog ok\n" in [reader.readline() for _ in range(3)]
            sock.sendall(b"?halt\n")
            assert b"!halt ok\n" in reader.readlines()
        assert process.wait(timeout=10) == 0


def test_sim_on_a_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = run("sim", "--port", str(sock.getsockname()[1]))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("katcp-inspect: cannot listen on 127.0.0.1:")
    assert "Address already in use" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sim_stops_on_sigint() -> None:
    with sim_process("--port", "0", "--sensors", "2") as process:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
