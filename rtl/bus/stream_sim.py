"""Drive and consume :mod:`amaranth.lib.stream` interfaces from Amaranth simulator testbenches.

Every unit test imports these instead of toggling ``valid``/``ready`` by hand, and runs its
testbenches with :func:`simulate`. A beat moves at the clock edge where ``valid`` and ``ready``
are both high; the helpers sample the handshake at that edge (``ctx.tick().sample(...)``
returns the values the flops see, before the edge's updates propagate), so a beat is never
lost or taken twice.

Random idle cycles (a producer that is not always ready to send) and random backpressure
(a consumer that is not always ready to take) come from a seeded :class:`random.Random`, so a
failing run replays exactly from its seed.
"""

import random

from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "simulate", "check_pipeline", "pipeline_timing",
           "check_error_flag"]


async def _edge_where(ctx, condition, *exprs):
    """Wait for the first clock edge at which ``condition`` holds; return ``exprs`` there.

    A loop of one-shot waits rather than ``ctx.tick().until()``: a testbench left waiting when
    another one fails is then closed cleanly instead of raising from a half-run async generator.
    """
    while True:
        _, _, done, *values = await ctx.tick().sample(condition, *exprs)
        if done:
            return values


async def _stall(ctx, rng, probability, name):
    """Wait a random number of cycles: another one with ``probability`` after each."""
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"{name} must be in [0, 1), not {probability!r}")
    if probability and rng is None:
        raise ValueError(f"{name}={probability!r} needs an rng")
    while probability and rng.random() < probability:
        await ctx.tick()


async def stream_put(ctx, stream, payload, *, rng=None, idle=0.0):
    """Send one beat on ``stream``; return after the edge that transferred it.

    Parameters
    ----------
    ctx : :class:`amaranth.sim.TestbenchContext`
    stream : :class:`amaranth.lib.stream.Interface`
        The sink side of the design, seen from the testbench.
    payload :
        Anything ``ctx.set`` accepts for ``stream.payload`` (an int, a list for an
        ``ArrayLayout``, a dict for a ``StructLayout``).
    rng : :class:`random.Random`, optional
        Source of idle cycles.
    idle : float
        Before raising ``valid``, wait another cycle with this probability, repeatedly.
        ``valid`` is never dropped before the beat is taken, as the stream rules require.

    Raises
    ------
    ValueError
        If ``idle`` is not in ``[0, 1)``, or is non-zero without an ``rng``.
    """
    await _stall(ctx, rng, idle, "idle")
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await _edge_where(ctx, stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, backpressure=0.0):
    """Take one beat from ``stream`` and return its payload.

    Parameters
    ----------
    ctx : :class:`amaranth.sim.TestbenchContext`
    stream : :class:`amaranth.lib.stream.Interface`
        The source side of the design, seen from the testbench.
    rng : :class:`random.Random`, optional
        Source of backpressure.
    backpressure : float
        Before raising ``ready``, wait another cycle with this probability, repeatedly,
        whether or not the design is offering a beat.

    Returns
    -------
    The payload as ``ctx.get`` gives it (an int, or a ``data.Const`` for a layout).

    Raises
    ------
    ValueError
        If ``backpressure`` is not in ``[0, 1)``, or is non-zero without an ``rng``.
    """
    await _stall(ctx, rng, backpressure, "backpressure")
    ctx.set(stream.ready, 1)
    payload, = await _edge_where(ctx, stream.valid, stream.payload)
    ctx.set(stream.ready, 0)
    return payload


def simulate(dut, *testbenches, background=(), timeout=10_000):
    """Run ``testbenches`` against ``dut`` on a 1 MHz ``sync`` clock until they all return.

    The ``sync`` domain is created around ``dut`` (which must not define one), so a design that
    turns out purely combinational for some parameters (a one-lane :class:`Skew`) is stepped
    the same way.

    When one testbench fails, the others are abandoned where they wait. Waits written as
    ``await ctx.tick()`` loops, as in :func:`stream_put` and :func:`stream_get`, close cleanly;
    one abandoned inside ``ctx.tick().until()`` or ``.repeat()`` raises while being collected,
    which pytest (warnings as errors) then blames on a later test.

    Parameters
    ----------
    dut : Elaboratable
    *testbenches : async callables taking a ``ctx``
        Run until each returns.
    background : iterable of async callables
        Run alongside, for as long as any of ``testbenches`` runs (monitors, models).
    timeout : int
        Cycles after which a design that never finishes the handshakes fails the run.

    Raises
    ------
    AssertionError
        If the testbenches have not returned after ``timeout`` cycles; anything a testbench
        raises also propagates.
    """
    period = 1e-6
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(period)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)

    async def watchdog(ctx):
        await ctx.delay(timeout * period)
        raise AssertionError(f"testbenches did not finish within {timeout} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.run()


def check_pipeline(dut, beats, expected, *, seed, idle=0.0, backpressure=0.0):
    """Stream ``beats`` through a one-in, one-out pipeline ``dut`` (ports ``i``, ``o``, a sticky
    ``error`` and ``busy``) under seeded random idle cycles and backpressure, and require its
    outputs to be ``expected(beat)`` in order, nothing more, with ``error`` never raised and
    ``busy`` low once they are out."""
    stall_rng = random.Random(seed)

    async def drive(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat, rng=stall_rng, idle=idle)

    async def check(ctx):
        for index, beat in enumerate(beats):
            payload = await stream_get(ctx, dut.o, rng=stall_rng, backpressure=backpressure)
            assert list(payload) == expected(beat), f"seed {seed}, beat {index}: {beat}"
        for _ in range(dut.latency + 1):
            await ctx.tick()
        assert not ctx.get(dut.o.valid), f"seed {seed}: an output too many"
        assert not ctx.get(dut.busy), f"seed {seed}: busy with nothing in flight"
        assert not ctx.get(dut.error), f"seed {seed}: error raised by valid parameters"

    simulate(dut, drive, check)


def pipeline_timing(dut, beats, gaps):
    """Offer ``beats`` to ``dut.i`` after ``gaps`` idle cycles each, with ``dut.o.ready`` high;
    require ``dut.i.ready`` never to drop and ``dut.busy`` to be high exactly while a beat is in
    flight, and return the edges at which beats were taken and the ``(edge, output)`` pairs
    offered."""
    schedule = []
    for beat, gap in zip(beats, gaps, strict=True):
        schedule += [None] * gap + [beat]
    taken, offered = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for edge in range(len(schedule) + dut.latency + 2):
            beat = schedule[edge] if edge < len(schedule) else None
            ctx.set(dut.i.valid, beat is not None)
            if beat is not None:
                ctx.set(dut.i.payload, beat)
            _, _, ready, valid, out, busy = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload, dut.busy)
            assert ready
            assert busy == (len(taken) > len(offered)), f"busy wrong at edge {edge}"
            if beat is not None:
                taken.append(edge)
            if valid:
                offered.append((edge, list(out)))

    simulate(dut, bench)
    return taken, offered


def check_error_flag(dut, good, bad, expected_good):
    """Check the sticky ``error`` flag of a pipeline ``dut`` against a beat ``bad`` with
    parameters it must reject: offered but not accepted (pipeline full) or present without
    ``valid``, it leaves ``error`` low; accepted, it sets ``error`` for good and still yields
    an output, and the ``good`` beats around it come out as ``expected_good``."""

    async def drive(ctx):
        await stream_put(ctx, dut.i, good)
        # Fill the pipeline while nothing is taken, then offer the bad beat: not accepted.
        for _ in range(dut.latency - 1):
            await stream_put(ctx, dut.i, good)
        ctx.set(dut.i.payload, bad)
        ctx.set(dut.i.valid, 1)
        for _ in range(4):
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert not ready
            assert not ctx.get(dut.error)
        ctx.set(dut.i.valid, 0)
        # Bad parameters without valid are not looked at either.
        for _ in range(2):
            await ctx.tick()
        assert not ctx.get(dut.error)
        await stream_put(ctx, dut.i, bad)
        assert ctx.get(dut.error)
        await stream_put(ctx, dut.i, good)

    async def check(ctx):
        for _ in range(dut.latency + 14):
            await ctx.tick()
        outputs = [list(await stream_get(ctx, dut.o)) for _ in range(dut.latency + 2)]
        assert outputs[:dut.latency] == [expected_good] * dut.latency
        assert outputs[-1] == expected_good
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.o.valid)
        assert ctx.get(dut.error)

    simulate(dut, drive, check)
