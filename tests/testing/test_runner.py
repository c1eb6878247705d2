"""``python -m katcp_inspect.testing``: prints its address, serves, stops on ?halt or SIGINT."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest

from katcp_inspect.testing.runner import build_parser


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.sensors, args.rate, args.protocol) == (
        "127.0.0.1", 7147, 40, 1.0, "5.1")


@pytest.mark.parametrize("how", ["halt", "sigint"])
def test_module_runs_a_device(how: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "katcp_inspect.testing", "--port", "0", "--sensors", "12",
         "--rate", "5", "--protocol", "5.0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(KATCP 5\.0-MI, 12 sensors", line)
        assert match, line
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5) as sock:
            reader = sock.makefile("rb")
            assert reader.readline() == b"#version-connect katcp-protocol 5.0-MI\n"
            if how == "halt":
                sock.sendall(b"?halt\n")
                assert b"!halt ok\n" in [reader.readline() for _ in range(3)]
            else:
                process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
