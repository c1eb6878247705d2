"""The fleet's configuration (issue 14): the TOML file and its errors, each reported with the
file, the line and what is wrong; the same checks for configurations made in Python; the
options reaching the clients."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from katcp_inspect.fleet import ConfigError, DeviceConfig, Fleet, FleetConfig

GOOD = '''\
# a fleet
[fleet]
max_syncing = 4
connect_spread = 0.5

[client]
sync_timeout = 7.5
reconnect_delay = 0.2
auto_sampling = "period 2"

[sampling]
"^rx\\\\." = "event"

[devices]
m000 = "127.0.0.1:7147"

[devices.m001]
address = "[::1]:7148"
client = { connect_timeout = 3.0 }

[devices.m001.sampling]
"cpu\\\\." = "period 1.0"
'''


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "fleet.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        FleetConfig.load(path)
    error = caught.value
    assert error.file == str(path)
    assert str(error).startswith(f"{path}:{error.line}: ")
    return error


def test_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(GOOD, encoding="utf-8")
    config = FleetConfig.load(path)
    assert (config.max_syncing, config.connect_spread) == (4, 0.5)
    assert config.devices["m000"] == DeviceConfig("127.0.0.1:7147")
    m001 = config.devices["m001"]
    assert (m001.host, m001.port) == ("::1", 7148)
    assert [(r.pattern, r.strategy) for r in config.device_rules(m001)] == [
        (r"^rx\.", ("event",)), (r"cpu\.", ("period", "1.0"))]
    assert config.device_options(m001) == {"sync_timeout": 7.5, "reconnect_delay": 0.2,
                                           "auto_sampling": ("period", "2"),
                                           "connect_timeout": 3.0}
    assert FleetConfig.load(_written(tmp_path, config.to_toml())) == config


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "again.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "line", "message"), [
    ("[fleets]\nmax_syncing = 2\n", 1,
     "fleets: unknown key (expected one of: fleet, redis, client, sampling, devices)"),
    ("[fleet]\nmax_sync = 2\n", 2,
     "fleet.max_sync: unknown key (expected one of: max_syncing, connect_spread)"),
    ("[client]\n\nsync_timeot = 2.0\n", 3, "client.sync_timeot: unknown client option"),
    ('[devices.m000]\naddress = "h:1"\nadress = "h:2"\n', 3,
     "devices.m000.adress: unknown key (expected one of: address, client, sampling)"),
    ('[devices.m000]\naddress = "h:1"\n[devices.m000.client]\nfoo = 1\n', 4,
     "devices.m000.client.foo: unknown client option"),
    ('[devices]\nm000 = { address = "h:1", colour = "red" }\n', 2,
     "devices.m000.colour: unknown key"),
])
def test_unknown_keys(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = load_error(tmp_path, text)
    assert error.line == line
    assert message in str(error)


@pytest.mark.parametrize(("address", "message"), [
    ("127.0.0.1", "no port in '127.0.0.1' (expected HOST:PORT, e.g. 127.0.0.1:7147)"),
    ("127.0.0.1:70000", "port 70000 out of range (1-65535) in '127.0.0.1:70000'"),
    ("127.0.0.1:0", "port 0 out of range"),
    (":7147", "empty host in ':7147'"),
    ("[]:7147", "empty host"),
    ("host:http", "the port in 'host:http' is not a number"),
    ("::1:7147", "is not HOST:PORT (an IPv6 host goes in brackets"),
])
def test_bad_addresses(tmp_path: Path, address: str, message: str) -> None:
    error = load_error(tmp_path, f'[devices]\nm000 = "127.0.0.1:1"\nm001 = "{address}"\n')
    assert error.line == 3
    assert str(error).endswith(f"devices.m001.address: {message}") or message in str(error)
    error = load_error(tmp_path, f'[devices.m001]\n\naddress = "{address}"\n')
    assert (error.line, error.where) == (3, ("devices", "m001", "address"))
    assert message in error.message


@pytest.mark.parametrize(("text", "line", "message"), [
    ('[devices.m000]\naddress = "h:1"\n\n[devices.m000]\naddress = "h:2"\n', 4,
     "devices.m000: duplicate device name 'm000' (first defined at line 1)"),
    ('[devices]\nm000 = "h:1"\nm001 = "h:2"\nm000 = "h:3"\n', 4,
     "devices.m000: duplicate device name 'm000' (first defined at line 2)"),
    ('[devices]\n"m 0" = "h:1"\n"m 0" = "h:3"\n', 3,
     'devices."m 0": duplicate device name \'m 0\' (first defined at line 2)'),
    ('[client]\nsync_timeout = 1.0\nsync_timeout = 2.0\n', 3,
     "client.sync_timeout: defined twice (first defined at line 2)"),
])
def test_duplicates(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = load_error(tmp_path, text)
    assert error.line == line
    assert str(error).endswith(message)


@pytest.mark.parametrize(("strategy", "message"), [
    ("evnt", "bad strategy 'evnt': unknown strategy 'evnt' (expected one of: none, auto, "
             "event, period, differential, event-rate, differential-rate)"),
    ("period", "bad strategy 'period': strategy period takes 1 parameter (period), not 0"),
    ("period soon", "bad strategy 'period soon': strategy period: 'soon' is not a number"),
    ("event 1", "bad strategy 'event 1': strategy event takes no parameters, not 1"),
    ("", "bad strategy '': is empty"),
])
def test_bad_strategies(tmp_path: Path, strategy: str, message: str) -> None:
    error = load_error(tmp_path, f'[sampling]\n"^a" = "event"\n"^rx" = "{strategy}"\n')
    assert error.line == 3
    assert f'sampling."^rx": {message}' in str(error)
    error = load_error(tmp_path, f'[devices.m]\naddress = "h:1"\nsampling.x = "{strategy}"\n')
    assert error.line == 3
    assert f"devices.m.sampling.x: {message}" in str(error)


def test_bad_regular_expressions(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[sampling]\n"rx(" = "event"\n')
    assert error.line == 2
    assert 'sampling."rx(": bad regular expression: missing ), unterminated subpattern' \
        in str(error)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("[client]\nsync_timeout = -1\n", 2,
     "client.sync_timeout: client option sync_timeout must be a finite number of seconds, "
     "at least 0, not -1"),
    ('[client]\nauto_reconnect = "yes"\n', 2, "must be true or false, not 'yes'"),
    ("[fleet]\nmax_syncing = 0\n", 2, "fleet.max_syncing: must be a whole number, at least 1"),
    ("[fleet]\nconnect_spread = inf\n", 2, "fleet.connect_spread: must be a finite number"),
    ("client = 5\n", 1, "client: must be a table, not 5"),
    ("[devices]\nm = 5\n", 2, 'devices.m: a device is "HOST:PORT" or a table with an address'),
    ("[devices.m]\nclient = {}\n", 1, "devices.m: no address"),
    ('[client]\nreconnect_delay = 5.0\nreconnect_delay_max = 1.0\n', 2,
     "client.reconnect_delay: reconnect_delay (5 s) is longer than reconnect_delay_max (1 s)"),
    ("[devices\nm = 1\n", 1, "not valid TOML: "),
])
def test_other_problems(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = load_error(tmp_path, text)
    assert error.line == line
    assert message in str(error)


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"^{missing}: cannot read the file: No such file"):
        FleetConfig.load(missing)
    path = tmp_path / "latin.toml"
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        FleetConfig.load(path)


def test_the_same_checks_in_python() -> None:
    with pytest.raises(ConfigError, match=r"^devices\.m\.address: no port in 'h'"):
        Fleet({"m": "h"})
    with pytest.raises(ConfigError, match=r"^sampling\.x: bad strategy 'evnt'"):
        DeviceConfig("h:1", sampling={"x": "evnt"})
    with pytest.raises(ConfigError, match=r"^devices\.m\.client\.reconnect_delay: "):
        Fleet({"m": DeviceConfig("h:1", client_options={"reconnect_delay": 40.0})})
    with pytest.raises(ConfigError, match=r'^sampling\."\(": bad regular expression'):
        Fleet({}, sampling={"(": "event"})
    with pytest.raises(ConfigError, match=r"^client\.colour: unknown client option"):
        Fleet({}, client_options={"colour": "red"})
    with pytest.raises(ConfigError, match="non-empty string"):
        Fleet({"": "h:1"})
    with pytest.raises(ValueError, match="max_syncing"):
        Fleet({}, max_syncing=0)
    with pytest.raises(ValueError, match="connect_spread"):
        Fleet({}, connect_spread=math.nan)
    fleet = Fleet({"m": "h:1"})
    with pytest.raises(ValueError, match="already in the fleet"):
        fleet.add_device("m", "h:2")
    with pytest.raises(ConfigError, match=r"^devices\.n\.address: port 0 out of range"):
        fleet.add_device("n", "h:0")
    with pytest.raises(KeyError):
        fleet["n"]
    assert fleet.names == ("m",)


def test_options_reach_the_clients() -> None:
    fleet = Fleet({"m": "h:1", "n": DeviceConfig("h:2", client_options={"sync_timeout": 3.0})},
                  client_options={"sync_timeout": 7.5, "connect_timeout": 2.0,
                                  "reconnect_delay": 0.25, "reconnect_delay_max": 4.0,
                                  "auto_reconnect": False, "max_line_length": 1000})
    m, n = fleet["m"], fleet["n"]
    assert (m.sync_timeout, n.sync_timeout) == (7.5, 3.0)
    katcp = m.katcp_client
    assert (katcp.connect_timeout, katcp.auto_reconnect, katcp.max_line_length) == (
        2.0, False, 1000)
    backoff = katcp.reconnect_backoff
    assert (backoff.delay_initial, backoff.delay_max) == (0.25, 4.0)
    assert 0 < backoff.delay <= 0.25
