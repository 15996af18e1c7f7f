"""cocotb drivers for Amaranth ``stream.Signature`` ports, stepped once per clock cycle.

One :class:`Clocking` coroutine advances every stream of a bench together: after each rising
edge it lets each stream drive its next values, then at ``ReadOnly`` it lets each stream
sample whether a transfer will happen at the coming edge. Doing this in one coroutine keeps
the Python cost per simulated cycle low and makes the handshake exact on both event-driven
(Icarus) and cycle-based (Verilator) simulators.
"""

from collections import deque

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink", "Clocking", "pack_lanes", "unpack_lanes"]


def pack_lanes(values, dtype):
    """Pack a vector of integers into the unsigned integer of an ``ArrayLayout`` port."""
    return int.from_bytes(np.asarray(values, dtype=dtype).tobytes(), "little")


def unpack_lanes(value, dtype, lanes):
    """Unpack the integer of an ``ArrayLayout`` port into ``lanes`` values of ``dtype``."""
    dtype = np.dtype(dtype)
    return np.frombuffer(value.to_bytes(lanes * dtype.itemsize, "little"), dtype=dtype)


class _Endpoint:
    """The handles of one stream port and a seeded pattern of stalled cycles."""

    def __init__(self, ports, name, *, rng, stall):
        self._valid = ports(name, "valid")
        self._ready = ports(name, "ready")
        self._payload = ports(name, "payload")
        self._rng = rng
        self._stall = stall

    def _stalled(self):
        return self._rng.random() < self._stall


class StreamSource(_Endpoint):
    """Offers queued payloads on a stream, with random idle cycles between them.

    Parameters
    ----------
    ports : :class:`sim.ports.Ports`
        Port lookup of the top.
    name : str
        Name of the stream member (``"acts"``).
    rng : random.Random
        Seeded source of the idle pattern.
    idle : float
        Probability of holding ``valid`` low in a cycle.
    """

    def __init__(self, ports, name, *, rng, idle=0.0):
        super().__init__(ports, name, rng=rng, stall=idle)
        self._queue = deque()
        self._offered = False
        self._fire = False
        self._valid.value = 0

    def send(self, payloads):
        """Queue payloads (unsigned integers) to be offered in order."""
        self._queue.extend(payloads)

    @property
    def pending(self):
        """Payloads not yet transferred."""
        return len(self._queue)

    def drive(self):
        if self._fire:
            self._queue.popleft()
            self._offered = False
        if not self._offered and self._queue and not self._stalled():
            self._payload.value = self._queue[0]
            self._offered = True
        self._valid.value = int(self._offered)

    def sample(self):
        self._fire = self._offered and bool(self._ready.value)


class StreamSink(_Endpoint):
    """Accepts payloads from a stream, with random cycles of backpressure.

    Parameters
    ----------
    ports : :class:`sim.ports.Ports`
        Port lookup of the top.
    name : str
        Name of the stream member (``"read_data"``).
    rng : random.Random
        Seeded source of the backpressure pattern.
    backpressure : float
        Probability of holding ``ready`` low in a cycle.
    """

    def __init__(self, ports, name, *, rng, backpressure=0.0):
        super().__init__(ports, name, rng=rng, stall=backpressure)
        self._accepting = False
        self.received = []
        self._ready.value = 0

    def drive(self):
        self._accepting = not self._stalled()
        self._ready.value = int(self._accepting)

    def sample(self):
        if self._accepting and self._valid.value:
            self.received.append(self._payload.value.to_unsigned())


class Clocking:
    """Steps a set of streams every cycle of ``clk``, counting cycles.

    Parameters
    ----------
    clk : cocotb handle
        The clock the streams are synchronous to.
    streams : list
        :class:`StreamSource` and :class:`StreamSink` objects.
    """

    def __init__(self, clk, streams):
        self._clk = clk
        self._streams = streams
        self.cycle = 0

    async def run(self, until, *, limit):
        """Step the streams until ``until()`` is true after a cycle.

        Raises
        ------
        TimeoutError
            If ``until()`` is still false after ``limit`` cycles: a hang is a failure, never
            a stuck simulation.
        """
        for _ in range(limit):
            await RisingEdge(self._clk)
            self.cycle += 1
            for stream in self._streams:
                stream.drive()
            await ReadOnly()
            for stream in self._streams:
                stream.sample()
            if until():
                return
        raise TimeoutError(f"condition not reached within {limit} cycles")
