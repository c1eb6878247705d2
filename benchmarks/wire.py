"""The bytes the benchmark device sends, and the values a client must end up with.

Everything is a pure function of the sensor count (and the flood size or the device's
generation), so the device process, the clients that check what they received and the
in-process ceiling all build the same bytes independently.
"""

from __future__ import annotations

import functools

#: First timestamp of a flood; update ``i`` is stamped ``BASE_TIMESTAMP + i`` microseconds.
BASE_TIMESTAMP = 1_700_000_000.0
#: Sensor ``j``'s value in device generation ``g`` (bumped by each restart) is
#: ``g * GENERATION_STEP + j``; flood values (``1.0`` and up) are all below it.
GENERATION_STEP = 1_000_000.0


def sensor_names(count: int) -> list[str]:
    return [f"bench.sensor.{j:05d}" for j in range(count)]


def generation_value(generation: int, index: int) -> float:
    return generation * GENERATION_STEP + index


def status_line(timestamp: float, name: str, value: float) -> bytes:
    return b"#sensor-status %.6f 1 %s nominal %r\n" % (timestamp, name.encode(), value)


def sensor_list_tail(name: str) -> bytes:
    """A ``#sensor-list`` inform after its name (and message id): `` name description
    units type``."""
    return b" %s Benchmark\\_float\\_sensor V float\n" % name.encode()


@functools.cache
def flood_buffer(sensors: int, updates: int) -> bytes:
    """``updates`` lines of ``#sensor-status``, round-robin over the sensors; update ``i``
    (0-based) sets sensor ``i % sensors`` to ``i + 1``, so values and timestamps increase."""
    names = sensor_names(sensors)
    return b"".join(status_line(BASE_TIMESTAMP + i * 1e-6, names[i % sensors], float(i + 1))
                    for i in range(updates))


def flood_counts(sensors: int, updates: int) -> dict[str, int]:
    """How many updates of a flood each sensor gets."""
    return {name: updates // sensors + (1 if j < updates % sensors else 0)
            for j, name in enumerate(sensor_names(sensors))}


def flood_last_values(sensors: int, updates: int) -> dict[str, float]:
    """Each sensor's value after a flood (sensors the flood does not reach are left out)."""
    return {name: float(j + sensors * ((updates - 1 - j) // sensors) + 1)
            for j, name in enumerate(sensor_names(sensors)) if j < updates}
