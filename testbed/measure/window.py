"""What a Kafka client's fixed socket buffer allows across a link: at most one window of bytes in
flight per round trip. Kafka's consumer sets SO_RCVBUF to ``receive.buffer.bytes`` (64 KiB by
default), and on Linux a socket with a set buffer no longer autotunes its receive window, so one
consumer across a link of RTT r reads at most buffer / r bytes per second, whatever the bandwidth:
64 KiB over 20 ms is 3.3 MB/s. ``-1`` leaves the buffer to the kernel (autotuned): no such cap.

Linux's window for a set buffer is not exactly the buffer: it doubles the buffer and advertises
what is left after its own per-packet overhead, so the window is between about the buffer and twice
it. The fidelity check measures what this kernel gives (``stack.calibrate.window_limited``).
"""

from __future__ import annotations

import math

DEFAULT_RECEIVE_BUFFER = 65536      # the Kafka consumer's receive.buffer.bytes
RECORD_OVERHEAD = 10                # a v2 record's length, attributes, deltas, key and value lengths, headers


def record_bytes(event_bytes: int, key_bytes: int) -> int:
    """A record's bytes in a fetch response (batch headers, a few per thousand records, left out)."""
    return event_bytes + key_bytes + RECORD_OVERHEAD


def receive_buffer(properties: dict) -> float:
    """The consumer's socket buffer in bytes from its settings; NaN when it autotunes (-1)."""
    v = int(properties.get("receive.buffer.bytes", DEFAULT_RECEIVE_BUFFER))
    return math.nan if v < 0 else float(v)


def consumer_cap(buffer_bytes: float, rtt_ms: float, bytes_per_record: float) -> float:
    """Records per second one consumer can read across a link of ``rtt_ms`` with a window of
    ``buffer_bytes``: buffer / RTT / bytes per record (inf without delay, NaN when it autotunes)."""
    if buffer_bytes != buffer_bytes:
        return math.nan
    if rtt_ms <= 0:
        return math.inf
    return buffer_bytes / (rtt_ms / 1000) / bytes_per_record
