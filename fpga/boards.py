"""The boards of the prototype and their tops: a PLL from the board oscillator to the target
clock, :class:`~fpga.soc.BoardSoC` in that clock domain, the UART to the host, and the status
LEDs.

:data:`BOARDS` names each board's platform (amaranth-boards), design point, clock, memory
and LEDs; :class:`BoardTop` builds the top from one. The PLL settings are computed here
(:func:`ice40_pll`, :func:`ecp5_pll`) by the rules the vendors' ``icepll`` and ``ecppll``
use, so the build needs no other tool.
"""

from dataclasses import dataclass, field, replace

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from jalapeno.runtime.link import BAUD
from rtl.config import JalapenoConfig, preset

from .memory import SPRAM_BYTES
from .probe import ArrayProbe
from .soc import BoardSoC, StatusLayout

__all__ = ["PllSettings", "ice40_pll", "ecp5_pll", "Board", "board_config", "BOARDS",
           "array_probe", "board", "BoardTop"]



@dataclass(frozen=True)
class PllSettings:
    """One PLL setting: its dividers by name, and the output frequency they give."""

    dividers: dict
    out_hz: float


def ice40_pll(in_hz: float, out_hz: float) -> PllSettings:
    """The ``SB_PLL40_CORE`` setting (simple feedback) whose output is nearest ``out_hz``:
    ``DIVR``, ``DIVF``, ``DIVQ`` and ``FILTER_RANGE``, with the phase detector at 10 to
    133 MHz and the VCO at 533 to 1066 MHz (the iCE40 sysCLOCK rules ``icepll`` applies).

    Raises
    ------
    ValueError
        If no setting comes within 1 % of ``out_hz``.
    """
    best = None
    for divr in range(16):
        pfd = in_hz / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if best is None or abs(out - out_hz) < abs(best.out_hz - out_hz):
                    ranges = (16e6, 26e6, 44e6, 66e6, 101e6)
                    filter_range = 1 + sum(pfd >= edge for edge in ranges)
                    best = PllSettings({"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                        "FILTER_RANGE": filter_range}, out)
    return _close_enough(best, out_hz)


def ecp5_pll(in_hz: float, out_hz: float) -> PllSettings:
    """The ``EHXPLLL`` setting (feedback from ``CLKOP``) whose output is nearest ``out_hz``:
    ``CLKI_DIV``, ``CLKFB_DIV`` and ``CLKOP_DIV``, with the phase detector at 3.125 to
    400 MHz and the VCO at 400 to 800 MHz, nearest 600 MHz (the rules ``ecppll`` applies).

    Raises
    ------
    ValueError
        If no setting comes within 1 % of ``out_hz``.
    """
    best = None
    for clki in range(1, 129):
        pfd = in_hz / clki
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            dividers = [op for op in range(1, 129) if 400e6 <= out * op <= 800e6]
            if not dividers:
                continue
            clkop = min(dividers, key=lambda op: abs(out * op - 600e6))
            if best is None or abs(out - out_hz) < abs(best.out_hz - out_hz):
                best = PllSettings({"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop},
                                   out)
    return _close_enough(best, out_hz)


def _close_enough(best, out_hz):
    if best is None or abs(best.out_hz - out_hz) > 0.01 * out_hz:
        raise ValueError(f"no PLL setting gives {out_hz / 1e6:g} MHz")
    return best


@dataclass(frozen=True, kw_only=True)
class Board:
    """One board of the prototype.

    Attributes
    ----------
    name : str
    platform : type
        The amaranth-boards platform class.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    config : JalapenoConfig
        The core's design point on this board.
    oscillator_hz : float
        The board oscillator, the PLL's input.
    clock_hz : float
        The target clock of the core: the PLL's output, and the constraint nextpnr must meet.
    memory_bytes : int
        Bytes of board memory from address 0.
    spram : bool
        Whether that memory is the UP5K's SPRAM (else block RAM).
    leds : dict of str to (str, int)
        For each field of :class:`~fpga.soc.StatusLayout`, the LED resource showing it.
    extra_resources : tuple of str
        Attributes of the platform holding resources to add before the top asks for them
        (the iCEBreaker's LED and button section, attached as a PMOD).
    probe : bool
        Whether the top carries :class:`~fpga.probe.ArrayProbe` (the array alone) in the
        SoC's place; see :func:`array_probe`.
    """

    name: str
    platform: type
    family: str
    config: JalapenoConfig
    oscillator_hz: float
    clock_hz: float
    memory_bytes: int
    spram: bool = False
    leds: dict = field(default_factory=dict)
    extra_resources: tuple = ()
    probe: bool = False

    @property
    def divisor(self):
        """Clock cycles per UART bit at the link's :data:`~jalapeno.runtime.link.BAUD`."""
        return round(self.clock_hz / BAUD)

    @property
    def pll(self):
        """The PLL setting from the board oscillator to :attr:`clock_hz`."""
        return (ice40_pll if self.family == "ice40" else ecp5_pll)(self.oscillator_hz,
                                                                    self.clock_hz)

    def make_platform(self):
        """A new instance of the board's platform, with its :attr:`extra_resources`."""
        platform = self.platform()
        for name in self.extra_resources:
            platform.add_resources(getattr(platform, name))
        return platform

def board_config(base: JalapenoConfig, memory_bytes: int, **changes) -> JalapenoConfig:
    """``base`` as a board carries it: without the vector unit (the host does the
    nonlinearities), its addresses just wide enough for the board's ``memory_bytes`` (every
    address register, comparator and queue entry is that wide), with ``changes``; named
    ``<base>_matrix``."""
    return replace(base, name=f"{base.name}_matrix", vector_unit=False,
                   addr_width=max(16, (memory_bytes - 1).bit_length()), **changes)


#: The boards, by name. Both carry matrix-only cores for now: the vector unit alone is three
#: times the UP5K, and on the 85F it needs more MULT18X18Ds than there are. On the UP5K each
#: queue entry is an instruction in logic cells, so its queues hold two, and its accumulator
#: read buffer three rows, not four: without the vector unit only STOREs read the
#: accumulator, a row per four bus words, which three entries keep up with. The ULX3S's 8 x 8
#: array is a stand-in until its size is chosen by measured GMAC/s at met timing (12 x 12
#: against 16 x 16).
BOARDS = {
    "icebreaker": Board(
        name="icebreaker", platform=ICEBreakerPlatform, family="ice40",
        config=board_config(preset("tiny"), SPRAM_BYTES, queue_depth=2,
                            read_fifo_depth=3),
        oscillator_hz=12e6, clock_hz=30e6, memory_bytes=SPRAM_BYTES, spram=True,
        leds={"heartbeat": ("led_g", 0), "link_error": ("led_r", 0), "link": ("led_g", 1),
              "irq": ("led_r", 1)},
        extra_resources=("break_off_pmod",)),
    "ulx3s": Board(
        name="ulx3s", platform=ULX3S_85F_Platform, family="ecp5",
        config=board_config(preset("default"), 256 * 1024),
        oscillator_hz=25e6, clock_hz=100e6, memory_bytes=256 * 1024,
        leds={"heartbeat": ("led", 0), "link": ("led", 1), "link_error": ("led", 2),
              "irq": ("led", 3)}),
}


def array_probe(brd: Board, rows: int, cols: int) -> Board:
    """``brd`` carrying a ``rows x cols`` array alone (:class:`~fpga.probe.ArrayProbe`),
    named ``<board>-array<rows>x<cols>``: the clock the array reaches by itself there.

    Raises
    ------
    ValueError
        If the board's design point does not take that array size.
    """
    config = replace(brd.config, name=f"{brd.config.name}_array", rows=rows, cols=cols)
    return replace(brd, name=f"{brd.name}-array{rows}x{cols}", config=config, probe=True)


def board(name: str) -> Board:
    """The board called ``name``.

    Raises
    ------
    ValueError
        If there is no such board; the message lists the ones there are.
    """
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None


class BoardTop(Elaboratable):
    """The top of ``board``: PLL, reset held until the PLL locks, :class:`BoardSoC` (or, on
    a probe board, :class:`~fpga.probe.ArrayProbe`) in the ``sync`` domain at the target
    clock, the UART pins and the status LEDs."""

    def __init__(self, board: Board):
        self.board = board
        if board.probe:
            self.soc = ArrayProbe(board.config)
        else:
            self.soc = BoardSoC(board.config, memory_bytes=board.memory_bytes,
                                divisor=board.divisor, spram=board.spram)

    def elaborate(self, platform):
        m = Module()
        brd = self.board
        m.domains.sync = ClockDomain("sync")
        oscillator = platform.request(platform.default_clk, dir="-")
        locked, clock = Signal(), Signal()
        settings = brd.pll.dividers
        if brd.family == "ice40":
            # The UP5K's PLL takes the oscillator straight from its pad (pin 35): with the
            # pad on a global buffer instead, nextpnr finds no site for the PLL.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                **{f"p_{name}": value for name, value in settings.items()},
                i_PACKAGEPIN=oscillator.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clock, o_LOCK=locked)
        else:
            m.submodules.oscillator = buffer = io.Buffer("i", oscillator)
            m.submodules.pll = Instance(
                "EHXPLLL",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_CPHASE=settings["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP",
                **{f"p_{name}": value for name, value in settings.items()},
                i_CLKI=buffer.i, i_CLKFB=clock, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
                i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clock, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clock)
        platform.add_clock_constraint(clock, brd.clock_hz)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        m.submodules.soc = soc = self.soc
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(rx.i), tx.o.eq(soc.tx)]
        for name in StatusLayout().members:
            resource, number = brd.leds[name]
            m.submodules[f"led_{name}"] = led = io.Buffer(
                "o", platform.request(resource, number, dir="-"))
            m.d.comb += led.o.eq(getattr(soc.status, name))
        return m
