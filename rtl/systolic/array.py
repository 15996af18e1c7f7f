"""The weight-stationary systolic array: a grid of PEs with skew, deskew and streams."""

from amaranth import Cat, Module, Signal, signed
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig
from .multipliers import Multipliers, dsp_products
from .pe import ProcessingElement, psum_shape
from .skew import Skew

__all__ = ["SystolicArray", "weight_row_layout"]


def weight_row_layout(config: JalapenoConfig):
    """Payload of one weight write: one row of ``cols`` weights, its row index and bank."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.in_width), config.cols),
        "row": range(config.rows),
        "bank": 1,
    })


def _column_write_layout(config: JalapenoConfig):
    """One column's share of a weight row write, as it travels along the row."""
    return data.StructLayout({
        "data": signed(config.in_width),
        "row": range(config.rows),
        "bank": 1,
        "valid": 1,
    })


class SystolicArray(wiring.Component):
    """``rows x cols`` weight-stationary array computing one int32 result vector per cycle.

    PE ``(r, c)`` holds weight ``W[r, c]`` of the bank an activation selects. Activation
    vector ``a`` (``rows`` int8 lanes) enters through a register and then skewed, so ``a[r]``
    reaches row ``r`` ``r`` cycles after row 0 and travels right; partial sums travel down,
    and the deskewed bottom row is ``a @ W`` (``cols`` int32 lanes, exact: see
    :func:`psum_shape`). A tag of any shape travels with each vector so the consumer knows
    where the result belongs. The input register is there for the clock: without it, the
    producer's logic (a scratchpad read) runs straight into row 0's products.

    Weight rows are written into one bank of every PE of the row they name. The write enters
    through its own register and travels along the row with the same skew as the
    activations: column ``c`` of a row write accepted in cycle ``W`` lands at the end of cycle
    ``W + c + 1``, just behind any activation accepted up to cycle ``W``. So a bank may be
    rewritten from the very cycle in which the last activation using it is accepted, and a
    new activation may use a bank from the cycle after its last row was accepted: two banks
    let one tile load while another computes, with no gap between tiles.

    The whole pipeline, weight writes included, advances together: it stalls only while a
    result is offered and not taken, so output backpressure never loses or reorders data;
    ``acts.ready`` and ``weights.ready`` are the pipeline enable.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``rows``, ``cols``, widths).
    tag_shape : ShapeLike
        Shape of the tag carried from ``acts`` to ``results``.

    Attributes
    ----------
    weights : In(stream.Signature(weight_row_layout(config)))
        Weight row writes.
    acts : In(stream.Signature(StructLayout({"data", "bank", "tag"})))
        Activation vectors with the weight bank they use and their tag.
    results : Out(stream.Signature(StructLayout({"data", "tag"})))
        Result vectors in the order their activations were accepted.
    busy : Out(1)
        A vector is in flight.
    """

    def __init__(self, config: JalapenoConfig, *, tag_shape: ShapeLike = 0):
        self._config = config
        act_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(config.in_width), config.rows),
            "bank": 1,
            "tag": tag_shape,
        })
        result_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(config.acc_width), config.cols),
            "tag": tag_shape,
        })
        super().__init__({
            "weights": In(stream.Signature(weight_row_layout(config))),
            "acts": In(stream.Signature(act_layout)),
            "results": Out(stream.Signature(result_layout)),
            "busy": Out(1),
        })

    @property
    def latency(self):
        """Enabled cycles from accepting an activation vector to offering its result: the
        input register, the skew, the products' pipeline and the deskew."""
        return self._config.rows + self._config.cols + Multipliers.LATENCY

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        en = Signal()
        m.d.comb += [
            en.eq(~self.results.valid | self.results.ready),
            self.acts.ready.eq(en),
            self.weights.ready.eq(en),
        ]

        m.submodules.skew_a = skew_a = Skew(lanes=cfg.rows, shape=signed(cfg.in_width))
        m.submodules.skew_bank = skew_bank = Skew(lanes=cfg.rows, shape=1)
        m.submodules.deskew = deskew = Skew(
            lanes=cfg.cols, shape=psum_shape(cfg, cfg.rows - 1), descending=True)
        m.submodules.skew_w = skew_w = Skew(lanes=cfg.cols, shape=_column_write_layout(cfg))
        m.d.comb += [skew_a.en.eq(en), skew_bank.en.eq(en), deskew.en.eq(en), skew_w.en.eq(en)]
        # The input registers: activations and weight writes alike, so a write keeps its
        # place behind the activations.
        with m.If(en):
            m.d.sync += [
                skew_a.i.eq(self.acts.payload.data),
                skew_bank.i.eq(self.acts.payload.bank.replicate(cfg.rows)),
            ]
            for c in range(cfg.cols):
                m.d.sync += [
                    skew_w.i[c].data.eq(self.weights.payload.data[c]),
                    skew_w.i[c].row.eq(self.weights.payload.row),
                    skew_w.i[c].bank.eq(self.weights.payload.bank),
                    skew_w.i[c].valid.eq(self.weights.valid),
                ]

        # The products two PEs at a time (an iCE40 SB_MAC16 holds two), each pair in its own
        # small unit: one wide unit would make every PE's operands one wide signal, which an
        # event-driven simulator re-evaluates whole for each PE's change. The pairs the
        # device's DSP blocks cannot hold are built in logic.
        lanes = cfg.rows * cfg.cols
        budget = dsp_products(platform)
        products = [Multipliers(cfg, min(2, lanes - lane),
                                hard=budget is None or lane + 2 <= budget)
                    for lane in range(0, lanes, 2)]
        for k, pair in enumerate(products):
            m.submodules[f"products_{k}"] = pair
            m.d.comb += pair.en.eq(en)
        pes = [[ProcessingElement(cfg, row=r) for _ in range(cfg.cols)] for r in range(cfg.rows)]
        for r, row in enumerate(pes):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe
                left = row[c - 1] if c else None
                pair, lane = divmod(r * cfg.cols + c, 2)
                m.d.comb += [
                    products[pair].a[lane].eq(pe.mul_a), products[pair].w[lane].eq(pe.mul_w),
                    pe.product.eq(products[pair].p[lane]),
                    pe.en.eq(en),
                    pe.a_in.eq(left.a_out if left else skew_a.o[r]),
                    pe.bank_in.eq(left.bank_out if left else skew_bank.o[r]),
                    pe.psum_in.eq(pes[r - 1][c].psum_out if r else 0),
                    pe.w_data.eq(skew_w.o[c].data),
                    pe.w_we.eq((en & skew_w.o[c].valid & (skew_w.o[c].row == r))
                               << skew_w.o[c].bank),
                ]
        for c in range(cfg.cols):
            m.d.comb += deskew.i[c].eq(pes[-1][c].psum_out)

        # Valid and tag travel beside the data, one register per enabled cycle of latency.
        valid = self.acts.valid & en
        tag = self.acts.payload.tag
        in_flight = []
        for stage in range(self.latency):
            valid_reg = Signal(name=f"valid_d{stage + 1}")
            tag_reg = Signal.like(tag, name=f"tag_d{stage + 1}")
            with m.If(en):
                m.d.sync += [valid_reg.eq(valid), tag_reg.eq(tag)]
            in_flight.append(valid_reg)
            valid, tag = valid_reg, tag_reg
        m.d.comb += [
            self.results.valid.eq(valid),
            self.results.payload.tag.eq(tag),
            *(self.results.payload.data[c].eq(deskew.o[c]) for c in range(cfg.cols)),
            self.busy.eq(Cat(*in_flight).any()),
        ]
        return m
