"""A UART, 8N1: a receiver and a transmitter of bytes at ``divisor`` clock cycles a bit."""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "check_divisor", "BITS_PER_BYTE"]

#: Bit times one byte takes on the line: start, eight data bits, stop.
BITS_PER_BYTE = 10


def check_divisor(divisor):
    """Raise unless ``divisor`` is an integer of at least 4: clock cycles per bit, few enough
    that the middle of a bit is still at least two cycles from its edges."""
    if isinstance(divisor, bool) or not isinstance(divisor, int):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < 4:
        raise ValueError(f"divisor must be at least 4, not {divisor}")


class UartRx(wiring.Component):
    """Receives 8N1 bytes on the ``rx`` pin.

    The pin passes a two-flop synchronizer (initially high, the idle level, so that reset
    does not look like a start bit). A low level while idle begins a byte; it is looked at
    again half a bit later, and if it is high by then it was a glitch and the receiver is idle
    again. From there the line is sampled once a bit, in the middle of each: eight data bits,
    least significant first, then the stop bit. A high stop bit delivers the byte on ``o``
    for one cycle; a low one drops it and pulses ``error`` instead (a framing error: wrong
    rate, noise, or a break). The receiver is idle again from the middle of the stop bit, so
    bytes from a transmitter a few percent fast are not lost.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Attributes
    ----------
    rx : In(1)
        The line, asynchronous; idle high.
    o : Out(stream.Signature(8, always_ready=True))
        The bytes received. ``valid`` is high for one cycle per byte and the consumer must
        take it then: a UART cannot be held off.
    error : Out(1)
        High for one cycle when a byte is dropped for a low stop bit.

    Raises
    ------
    TypeError, ValueError
        If ``divisor`` is not an integer of at least 4.
    """

    rx: In(1)
    o: Out(stream.Signature(8, always_ready=True))
    error: Out(1)

    def __init__(self, *, divisor: int):
        check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        busy = Signal()
        bit = Signal(range(BITS_PER_BYTE))  # 0 is the start bit, 9 the stop bit
        timer = Signal(range(divisor))
        shift = Signal(8)
        m.d.comb += self.o.payload.eq(shift)
        m.d.sync += [self.o.valid.eq(0), self.error.eq(0)]

        with m.If(~busy):
            with m.If(~line):
                m.d.sync += [busy.eq(1), bit.eq(0), timer.eq(divisor // 2 - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [timer.eq(divisor - 1), bit.eq(bit + 1)]
            with m.If(bit == 0):
                m.d.sync += busy.eq(~line)
            with m.Elif(bit == BITS_PER_BYTE - 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(line), self.error.eq(~line)]
            with m.Else():
                m.d.sync += shift.eq(Cat(shift[1:], line))
        return m


class UartTx(wiring.Component):
    """Sends 8N1 bytes on the ``tx`` pin.

    A byte is taken from ``i`` while the transmitter is idle and sent as a start bit, eight
    data bits, least significant first, and a stop bit, ``divisor`` cycles each. ``i.ready``
    is high while idle and in the last cycle of the stop bit, so bytes offered back to back
    follow each other without a gap. The pin comes straight from a flop, high while idle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Attributes
    ----------
    i : In(stream.Signature(8))
        The bytes to send.
    tx : Out(1)
        The line; idle high.

    Raises
    ------
    TypeError, ValueError
        If ``divisor`` is not an integer of at least 4.
    """

    i: In(stream.Signature(8))
    tx: Out(1)

    def __init__(self, *, divisor: int):
        check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        # The frame shifts out at the bottom; ones shift in at the top, so the line is high
        # once it has gone.
        frame = Signal(BITS_PER_BYTE, init=(1 << BITS_PER_BYTE) - 1)
        left = Signal(range(BITS_PER_BYTE))  # bits to send after the one on the line
        timer = Signal(range(divisor))  # cycles of the bit on the line after this one
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq((left == 0) & (timer == 0))]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [
                frame.eq(Cat(frame[1:], Const(1, 1))),
                left.eq(left - 1),
                timer.eq(divisor - 1),
            ]
        with m.Elif(self.i.valid):
            m.d.sync += [
                frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                left.eq(BITS_PER_BYTE - 1),
                timer.eq(divisor - 1),
            ]
        return m
