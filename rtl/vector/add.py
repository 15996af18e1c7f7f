"""Elementwise int8 ADD of two vectors, bit-exact with TFLite's int8 ADD kernel."""

from amaranth import Signal, signed, unsigned
from amaranth.lib import data

from ..config import JalapenoConfig
from .fixedpoint import (
    SHIFT_WIDTH,
    delay,
    register_clamped,
    rescale,
    rescale_invalid,
)
from .pipeline import VectorPipeline

__all__ = ["ElementwiseAdd", "add_in_layout", "ADD_LEFT_SHIFT"]

#: Bits ADD moves both inputs up by before rescaling them (TFLite's ``left_shift``).
ADD_LEFT_SHIFT = 20


def add_in_layout(config: JalapenoConfig):
    """Payload of one addition: ``cols`` lanes of each int8 input and the quantization of the
    ADD, which all lanes share. The parameter fields are named as in
    :class:`verification.models.quant.AddParams`, plus the fused activation's clamping range."""
    fields = {"multiplier": unsigned(config.acc_width - 1), "shift": signed(SHIFT_WIDTH)}
    params = {}
    for operand in ("input1", "input2", "output"):
        params[f"{operand}_zero_point"] = signed(config.in_width)
        params.update({f"{operand}_{key}": shape for key, shape in fields.items()})
    params["act_min"] = params["act_max"] = signed(config.in_width)
    return data.StructLayout({
        "a": data.ArrayLayout(signed(config.in_width), config.cols),
        "b": data.ArrayLayout(signed(config.in_width), config.cols),
        "params": data.StructLayout(params),
    })


class ElementwiseAdd(VectorPipeline):
    """``cols`` lanes of TFLite's int8 ADD, one vector pair per cycle.

    Lane ``c`` computes :func:`verification.models.quant.add` of ``a[c]`` and ``b[c]`` with the
    shared parameters, bit for bit: each input less its zero point is shifted left by
    :data:`ADD_LEFT_SHIFT` and rescaled with its multiplier and shift; the two are summed
    (wrapping in int32) and the sum is rescaled with the output multiplier and shift, offset by
    the output zero point and clamped to ``[act_min, act_max]``. Every rescaling is the
    requantizer's double-rounding ``MultiplyByQuantizedMultiplier``.

    Six stages: the two input rescalings (multiply, round the high half), the rounding divides
    and the sum, then the output rescaling (multiply, round the high half) and finally the
    rounding divide, zero point and clamp. The whole pipeline advances together: it stalls only
    while an output is offered and not taken, so output backpressure never loses or reorders
    data; ``i.ready`` is the pipeline enable.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``acc_width``, ``in_width``).

    Attributes
    ----------
    i : In(stream.Signature(add_in_layout(config)))
        Pairs of int8 vectors with the ADD's quantization parameters.
    o, error, busy
        As in :class:`~rtl.vector.pipeline.VectorPipeline`.
    """

    latency = 6

    def __init__(self, config: JalapenoConfig):
        super().__init__(config, add_in_layout)

    def datapath(self, m, en):
        cfg = self._config
        width = cfg.acc_width
        p = self.i.payload.params
        # Bits of the parameters no later stage reads are left for synthesis to prune.
        params_shape = add_in_layout(cfg).members["params"]
        mid = delay(m, en, p, params_shape, 3, "params")
        late = delay(m, en, mid, params_shape, 2, "params")

        for c in range(cfg.cols):
            scaled = []
            for operand, x in (("input1", self.i.payload.a[c]), ("input2", self.i.payload.b[c])):
                moved = (x - p[f"{operand}_zero_point"]) << ADD_LEFT_SHIFT
                scaled.append(rescale(m, en, moved, p[f"{operand}_multiplier"],
                                      p[f"{operand}_shift"], width, f"{operand}_{c}"))
            total = Signal(signed(width), name=f"sum_{c}")
            with m.If(en):
                m.d.sync += total.eq(scaled[0] + scaled[1])

            rescaled = rescale(m, en, total, mid.output_multiplier, mid.output_shift, width,
                               f"output_{c}")
            # The model adds the output zero point without wrapping to int32: one more bit holds
            # the sum exactly, whatever the parameters.
            offset = Signal(signed(width + 1), name=f"offset_{c}")
            m.d.comb += offset.eq(rescaled + late.output_zero_point)
            register_clamped(m, en, self.o.payload[c], offset, late.act_min, late.act_max,
                             f"lane{c}")

        invalid = p.act_min > p.act_max
        for operand in ("input1", "input2", "output"):
            invalid |= rescale_invalid(p[f"{operand}_multiplier"], p[f"{operand}_shift"], width)
        return invalid
