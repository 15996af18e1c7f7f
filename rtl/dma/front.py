"""The half of a DMA engine both directions share: descriptors in, checked bursts out."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .burst import BurstSplitter
from .check import DescriptorCheck
from .control import EngineControl, check_max_pending
from .descriptor import DmaError, burst_layout, check_config, descriptor_layout

__all__ = ["EngineFront", "engine_control_signature", "engine_ports"]


def engine_control_signature(config):
    """How a queue drives one engine, from the driver's side: ``desc`` (descriptors out),
    ``done`` (one outcome per descriptor back), ``clear`` (leave the error state), ``error``
    (the code while stopped) and ``busy``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    return wiring.Signature({
        "desc": Out(stream.Signature(descriptor_layout(config))),
        "done": In(stream.Signature(DmaError)),
        "clear": Out(1),
        "error": In(DmaError),
        "busy": In(1),
    })


def engine_ports(config):
    """The ports both engines have, as a signature dict: the control port of
    :func:`engine_control_signature` from the engine's side, and the window
    (``window_base``, ``window_limit``)."""
    control = engine_control_signature(config).flip().members
    return {**{name: control[name] for name in control},
            "window_base": In(config.addr_width), "window_limit": In(config.addr_width)}


class EngineFront(wiring.Component):
    """:class:`DescriptorCheck`, :class:`BurstSplitter` and :class:`EngineControl` wired
    together: a read or write engine adds only its datapath, which takes ``bursts`` and tells
    the front when bursts complete or fail.

    A descriptor is checked while the one before it is still being split, and split while the
    bursts of the ones before it are in flight, so back-to-back descriptors leave no gap on
    the bus.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
    max_pending : int
        Descriptors taken but not yet reported on ``done``, at most.
    accumulator : bool
        Whether descriptors may read the accumulator memory (see :class:`DescriptorCheck`).

    Attributes
    ----------
    desc, done, window_base, window_limit, clear, error, busy
        The engine's own ports (see :class:`~rtl.dma.read_engine.ReadEngine`).
    bursts : Out(stream.Signature(burst_layout(config)))
        Bursts to issue, each inside the window when taken.
    completed : In(1)
        The last burst of a descriptor completed without error.
    bus_fault : In(stream.Signature(DmaError, always_ready=True))
        A bus error response (``SLVERR`` or ``DECERR``).
    drained : In(1)
        No burst the datapath has taken is still in flight.
    bus_failed : Out(1)
        The engine stopped on a bus error: write nothing more.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`, or ``max_pending`` not an integer.
    ValueError
        If ``max_pending`` is less than 1.
    """

    def __init__(self, config, *, max_pending, accumulator=False):
        check_config(config)
        check_max_pending(max_pending)
        self._control = EngineControl(max_pending=max_pending)
        self._check = DescriptorCheck(config, accumulator=accumulator)
        self._splitter = BurstSplitter(config)
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout(config))),
            "done": Out(stream.Signature(DmaError)),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width),
            "clear": In(1),
            "error": Out(DmaError),
            "busy": Out(1),
            "bursts": Out(stream.Signature(burst_layout(config))),
            "completed": In(1),
            "bus_fault": In(stream.Signature(DmaError, always_ready=True)),
            "drained": In(1),
            "bus_failed": Out(1),
        })

    def attach(self, m, engine):
        """Connect the engine's own ports (``desc``, ``done``, the window, ``clear``, ``error``
        and ``busy``) to this front, in ``m``."""
        wiring.connect(m, wiring.flipped(engine.desc), self.desc)
        wiring.connect(m, self.done, wiring.flipped(engine.done))
        m.d.comb += [
            self.window_base.eq(engine.window_base),
            self.window_limit.eq(engine.window_limit),
            self.clear.eq(engine.clear),
            engine.error.eq(self.error),
            engine.busy.eq(self.busy),
        ]

    def elaborate(self, platform):
        m = Module()
        m.submodules.check = check = self._check
        m.submodules.splitter = splitter = self._splitter
        m.submodules.control = control = self._control

        wiring.connect(m, check.checked, splitter.checked)
        wiring.connect(m, splitter.report, control.report)
        wiring.connect(m, wiring.flipped(self.bus_fault), control.bus_fault)
        wiring.connect(m, control.done, wiring.flipped(self.done))
        wiring.connect(m, splitter.bursts, wiring.flipped(self.bursts))
        m.d.comb += [
            check.desc.payload.eq(self.desc.payload),
            check.desc.valid.eq(self.desc.valid & control.open),
            self.desc.ready.eq(check.desc.ready & control.open),
            control.taken.eq(self.desc.valid & self.desc.ready),
            control.completed.eq(self.completed),
            control.drained.eq(self.drained),
            control.clear.eq(self.clear),
            check.flush.eq(control.flush),
            splitter.flush.eq(control.flush),
            splitter.drained.eq(self.drained),
            self.error.eq(control.error),
            self.busy.eq(control.busy),
            self.bus_failed.eq(control.bus_failed),
        ]
        for block in (check, splitter):
            m.d.comb += [block.window_base.eq(self.window_base),
                         block.window_limit.eq(self.window_limit)]
        return m
