"""Clamp (ReLU, ReLU6 and any fused activation range) of int8 vectors."""

from amaranth import signed
from amaranth.lib import data

from ..config import JalapenoConfig
from .fixedpoint import register_clamped
from .pipeline import VectorPipeline

__all__ = ["Clamp", "clamp_in_layout"]


def clamp_in_layout(config: JalapenoConfig):
    """Payload of one clamp: ``cols`` int8 lanes and the range they share."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.in_width), config.cols),
        "act_min": signed(config.in_width),
        "act_max": signed(config.in_width),
    })


class Clamp(VectorPipeline):
    """``cols`` int8 lanes clamped to ``[act_min, act_max]``, one vector per cycle.

    An activation whose input and output share one quantization is a clamp in int8: ReLU is
    ``[zero_point, 127]``, ReLU6 is ``[zero_point, zero_point + round(6 / scale)]`` (clamped to
    int8). One stage, as the output clamp of the requantizer and the ADD.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``in_width``).

    Attributes
    ----------
    i : In(stream.Signature(clamp_in_layout(config)))
        int8 vectors with their range.
    o, error, busy
        As in :class:`~rtl.vector.pipeline.VectorPipeline`; ``error`` is set by an accepted
        beat with ``act_min > act_max``.
    """

    latency = 1

    def __init__(self, config: JalapenoConfig):
        super().__init__(config, clamp_in_layout)

    def datapath(self, m, en):
        p = self.i.payload
        for c in range(self._config.cols):
            register_clamped(m, en, self.o.payload[c], p.data[c], p.act_min, p.act_max,
                             f"lane{c}")
        return p.act_min > p.act_max
