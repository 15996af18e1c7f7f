"""An energy estimate for a board build. No open tool estimates FPGA power, so each report
carries this model's figure, labelled as an estimate, until a board is measured.

``P = static + f_MHz * (per_mhz + per_mac_mhz * MACs per cycle)``, all MACs busy: a static
term, a clock and control term growing with the clock, and one per MAC unit per MHz.

iCE40UP5K, from published figures:

* static about 0.1 mW (the UP5K data sheet's typical core standby current, 75 uA at 1.2 V);
* 52 uW/MHz for the clock and control of a small design (published measurements);
* per MAC: from MARLANN, the open UP5K network engine, 10.58 mW running 16 MACs at about
  25 MHz: ``(10.58 - 0.1 - 25 * 0.052) / (25 * 16)``, 23 uW per MAC and MHz.

ECP5-85F: no figure of a comparable design was at hand, so its terms are assumptions to be
replaced by a measurement on the ULX3S, and the report says so.
"""

from dataclasses import dataclass

__all__ = ["EnergyModel", "MODELS", "estimate"]


@dataclass(frozen=True)
class EnergyModel:
    """The terms of one family's model, in watts, and where each comes from."""

    static_w: float
    per_mhz_w: float
    per_mac_mhz_w: float
    sources: str


MODELS = {
    "ice40": EnergyModel(
        static_w=0.1e-3, per_mhz_w=52e-6, per_mac_mhz_w=23e-6,
        sources="static: UP5K data sheet typical standby current; per MHz: published "
                "small-design measurement (~52 uW/MHz); per MAC: fitted to MARLANN's "
                "10.58 mW for 16 MACs at ~25 MHz"),
    "ecp5": EnergyModel(
        static_w=0.1, per_mhz_w=1e-3, per_mac_mhz_w=40e-6,
        sources="assumed, not measured: static 100 mW, 1 mW/MHz clock and control, "
                "40 uW per MAC and MHz (replace with a ULX3S measurement)"),
}


def estimate(board, clock_mhz: float) -> dict:
    """The estimate for ``board`` (a :class:`~fpga.boards.Board`) running every MAC at
    ``clock_mhz``: watts, GMAC/s per watt, the model's terms and sources, and the label."""
    model = MODELS[board.family]
    macs = board.config.macs_per_cycle
    watts = model.static_w + clock_mhz * (model.per_mhz_w + model.per_mac_mhz_w * macs)
    gmacs = macs * clock_mhz / 1e3
    return {"label": "estimate from a model, not a measurement", "watts": round(watts, 5),
            "gmacs_per_watt": round(gmacs / watts, 1),
            "model": {"static_w": model.static_w, "per_mhz_w": model.per_mhz_w,
                      "per_mac_mhz_w": model.per_mac_mhz_w, "sources": model.sources}}
