"""Feeds weight tiles and activation vectors into the array so that tiles run back to back."""

from amaranth import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig
from .array import weight_row_layout

__all__ = ["TileSequencer", "tile_command_layout", "result_tag_layout"]


def tile_command_layout(config: JalapenoConfig):
    """One GEMM tile: ``C[acc_addr : acc_addr + m, :n] (+)= A[m x k] @ W[k x n]``.

    ``k <= rows``, ``n <= cols`` and ``m <= acc_depth``; any of them may be zero. Rows of the
    accumulator wrap around modulo ``acc_depth``.
    """
    return data.StructLayout({
        "m": range(config.acc_depth + 1),
        "k": range(config.rows + 1),
        "n": range(config.cols + 1),
        "acc_addr": config.acc_addr_width,
        "accumulate": 1,
    })


def result_tag_layout(config: JalapenoConfig):
    """What travels through the array with each activation: where its result goes."""
    return data.StructLayout({
        "addr": config.acc_addr_width,
        "accumulate": 1,
        "lanes": config.cols,
    })


class TileSequencer(wiring.Component):
    """Loads each tile's weights into a free bank and streams its activations behind them.

    Two weight banks alternate: while tile ``j`` streams activations through one bank, the
    weights of tile ``j + 1`` load into the other. A bank is free for the next tile's weights
    as soon as its last activation has entered the array (the array's weight writes follow
    its activations, see :class:`SystolicArray`), and a command is taken together with its
    first weight row, so a stream of tiles with ``M >= k`` runs with no idle cycle in
    between, and one of ``M < k`` takes ``k`` cycles, the time to load its weights.

    Activation lanes at and above ``k`` are forced to zero, so stale weights in those rows of
    the bank cannot contribute; lanes at and above ``n`` are masked off when the result is
    written.

    A command whose fields the unit cannot take (``k > rows``, ``n > cols``,
    ``m > acc_depth``, all encodable in the fields' bits) sets the sticky ``error`` flag until
    reset. It still consumes exactly ``k`` weight rows and ``m`` activations, so the streams
    stay in step and nothing hangs; that tile's own results are undefined, every other
    tile's are exact.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point.

    Attributes
    ----------
    cmd : In(stream.Signature(tile_command_layout(config)))
        Tiles, in order.
    weights : In(stream.Signature(ArrayLayout(signed(8), cols)))
        ``k`` weight rows per tile, row 0 first.
    acts : In(stream.Signature(ArrayLayout(signed(8), rows)))
        ``m`` activation vectors per tile, lane ``i`` multiplying weight row ``i``.
    array_weights, array_acts : Out
        To the :class:`SystolicArray`; ``array_acts.ready`` is the array's pipeline enable.
    busy : Out(1)
        A tile is loading or streaming.
    error : Out(1)
        A command with a field out of range was accepted since reset.
    """

    def __init__(self, config: JalapenoConfig):
        self._config = config
        act_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(config.in_width), config.rows),
            "bank": 1,
            "tag": result_tag_layout(config),
        })
        super().__init__({
            "cmd": In(stream.Signature(tile_command_layout(config))),
            "weights": In(stream.Signature(data.ArrayLayout(signed(config.in_width), config.cols))),
            "acts": In(stream.Signature(data.ArrayLayout(signed(config.in_width), config.rows))),
            "array_weights": Out(stream.Signature(weight_row_layout(config))),
            "array_acts": Out(stream.Signature(act_layout)),
            "busy": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        slot_layout = data.StructLayout({
            "m": range(cfg.acc_depth + 1),
            "k": range(cfg.rows + 1),
            "addr": cfg.acc_addr_width,
            "accumulate": 1,
            "k_lanes": cfg.rows,
            "n_lanes": cfg.cols,
        })
        loaded = Array(Signal(name=f"bank{b}_loaded") for b in range(2))
        slot = Array(Signal(slot_layout, name=f"bank{b}_tile") for b in range(2))

        # Loader: write a tile's k weight rows into a free bank, one per cycle. The command
        # is taken in the same cycle as its first row, so short tiles load back to back.
        load_bank = Signal()
        load_row = Signal.like(self.cmd.payload.k)
        cmd = self.cmd.payload
        write = self.array_weights
        m.d.comb += [
            write.payload.data.eq(self.weights.payload),
            write.payload.bank.eq(load_bank),
        ]
        with m.FSM(name="loader") as loader:
            with m.State("IDLE"):
                free = ~loaded[load_bank]
                first_row = self.cmd.valid & free & (cmd.k != 0)
                m.d.comb += [
                    self.cmd.ready.eq(free & ((cmd.k == 0) | (self.weights.valid & write.ready))),
                    write.valid.eq(first_row & self.weights.valid),
                    write.payload.row.eq(0),
                    self.weights.ready.eq(first_row & write.ready),
                ]
                with m.If(self.cmd.valid & self.cmd.ready):
                    with m.If((cmd.k > cfg.rows) | (cmd.n > cfg.cols) | (cmd.m > cfg.acc_depth)):
                        m.d.sync += self.error.eq(1)
                    m.d.sync += [
                        slot[load_bank].m.eq(cmd.m),
                        slot[load_bank].k.eq(cmd.k),
                        slot[load_bank].addr.eq(cmd.acc_addr),
                        slot[load_bank].accumulate.eq(cmd.accumulate),
                        slot[load_bank].k_lanes.eq(_lanes_below(cmd.k, cfg.rows)),
                        slot[load_bank].n_lanes.eq(_lanes_below(cmd.n, cfg.cols)),
                        load_row.eq(1),
                    ]
                    with m.If(cmd.k <= 1):
                        m.d.sync += [loaded[load_bank].eq(1), load_bank.eq(~load_bank)]
                    with m.Else():
                        m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [
                    write.valid.eq(self.weights.valid),
                    write.payload.row.eq(load_row),
                    self.weights.ready.eq(write.ready),
                ]
                with m.If(self.weights.valid & self.weights.ready):
                    m.d.sync += load_row.eq(load_row + 1)
                    with m.If(load_row == slot[load_bank].k - 1):
                        m.d.sync += [loaded[load_bank].eq(1), load_bank.eq(~load_bank)]
                        m.next = "IDLE"

        # Issuer: stream m activation vectors through each loaded bank, in tile order.
        issue_bank = Signal()
        issued = Signal(range(cfg.acc_depth + 1))
        tile = slot[issue_bank]
        enable = self.array_acts.ready
        with m.If(loaded[issue_bank]):
            with m.If(tile.m == 0):
                m.d.sync += [loaded[issue_bank].eq(0), issue_bank.eq(~issue_bank)]
            with m.Else():
                m.d.comb += [
                    self.array_acts.valid.eq(self.acts.valid),
                    self.array_acts.payload.data.eq(self.acts.payload.as_value() & _byte_mask(
                        tile.k_lanes, cfg.rows, cfg.in_width)),
                    self.array_acts.payload.bank.eq(issue_bank),
                    self.array_acts.payload.tag.addr.eq(tile.addr + issued),
                    self.array_acts.payload.tag.accumulate.eq(tile.accumulate),
                    self.array_acts.payload.tag.lanes.eq(tile.n_lanes),
                    self.acts.ready.eq(enable),
                ]
                with m.If(self.acts.valid & enable):
                    m.d.sync += issued.eq(issued + 1)
                    with m.If(issued == tile.m - 1):
                        m.d.sync += [issued.eq(0), loaded[issue_bank].eq(0),
                                     issue_bank.eq(~issue_bank)]

        m.d.comb += self.busy.eq(loaded[0] | loaded[1] | ~loader.ongoing("IDLE"))
        return m


def _lanes_below(count, lanes):
    """A mask with bit ``i`` set for every lane ``i < count``."""
    return Cat(Const(i, range(lanes + 1)) < count for i in range(lanes))


def _byte_mask(lane_mask, lanes, width):
    """Widen a per-lane mask to a per-bit mask of ``lanes`` lanes of ``width`` bits."""
    return Cat(lane_mask[i].replicate(width) for i in range(lanes))
