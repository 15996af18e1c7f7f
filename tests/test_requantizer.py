# amaranth: UnusedElaboratable=no

import numpy as np
import pytest

from rtl.bus.stream_sim import (
    check_error_flag,
    check_pipeline,
    pipeline_timing,
)
from rtl.config import JalapenoConfig
from rtl.vector.requantizer import Requantizer
from verification.models.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    requantize,
)

CONFIGS = [
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="cols3"),
    pytest.param(JalapenoConfig(rows=2, cols=1, acc_depth=16), id="cols1"),
]
CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16)
MULTIPLIER_MIN = 1 << 30


def random_beat(rng, cols):
    """One input beat, drawn so that the edge values of every field turn up often."""
    def pick(specials, lo, hi):
        return int(rng.choice(specials)) if rng.random() < 0.3 else int(rng.integers(lo, hi + 1))

    data = [pick([INT32_MIN, INT32_MAX, 0, -1, 1], INT32_MIN, INT32_MAX) for _ in range(cols)]
    params = [{
        "multiplier": pick([0, MULTIPLIER_MIN, INT32_MAX], MULTIPLIER_MIN, INT32_MAX),
        "shift": pick([SHIFT_MIN, 0, SHIFT_MAX], SHIFT_MIN, SHIFT_MAX),
        "zero_point": int(rng.integers(INT8_MIN, INT8_MAX + 1)),
    } for _ in range(cols)]
    if rng.random() < 0.3:
        act_min, act_max = INT8_MIN, INT8_MAX
    else:
        act_min, act_max = sorted(int(v) for v in rng.integers(INT8_MIN, INT8_MAX + 1, size=2))
    return {"data": data, "params": params, "act_min": act_min, "act_max": act_max}


def expected(beat):
    params = beat["params"]
    return requantize(beat["data"], [p["multiplier"] for p in params],
                      [p["shift"] for p in params], [p["zero_point"] for p in params],
                      beat["act_min"], beat["act_max"]).tolist()


def good_beat(cols):
    """Valid parameters: 1000 * 0.75 * 2**-3, rounded, plus zero point 5."""
    return {"data": [1000] * cols,
            "params": [{"multiplier": 3 << 29, "shift": -3, "zero_point": 5}] * cols,
            "act_min": INT8_MIN, "act_max": INT8_MAX}


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        Requantizer("default")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.2, 0.6)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_model(cfg, idle, backpressure, seed):
    """Random beats, edge values included, come out as ``quant.requantize`` bit for bit and in
    order under random idle cycles on ``i`` and random backpressure on ``o``; valid parameters
    never raise ``error``."""
    rng = np.random.default_rng(seed)
    dut = Requantizer(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(150)]
    check_pipeline(dut, beats, expected, seed=seed, idle=idle, backpressure=backpressure)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_latency_without_stalls(cfg):
    """With ``o.ready`` held high, ``i.ready`` never drops and each output is offered exactly
    ``latency`` cycles after its input was taken, back to back or spaced."""
    rng = np.random.default_rng(0)
    dut = Requantizer(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(8)]
    taken, offered = pipeline_timing(dut, beats, [0, 0, 0, 2, 0, 5, 1, 0])
    assert dut.latency == 3
    assert [edge - dut.latency for edge, _ in offered] == taken
    assert [out for _, out in offered] == [expected(beat) for beat in beats]


def bad_shift_low(beat):
    beat["params"][-1] = {**beat["params"][-1], "shift": SHIFT_MIN - 1}


def bad_shift_high(beat):
    beat["params"][0] = {**beat["params"][0], "shift": SHIFT_MAX + 1}


def bad_multiplier_one(beat):
    beat["params"][0] = {**beat["params"][0], "multiplier": 1}


def bad_multiplier_below(beat):
    beat["params"][-1] = {**beat["params"][-1], "multiplier": MULTIPLIER_MIN - 1}


def bad_clamp(beat):
    beat["act_min"], beat["act_max"] = 1, 0


@pytest.mark.parametrize("corrupt", [bad_shift_low, bad_shift_high, bad_multiplier_one,
                                     bad_multiplier_below, bad_clamp])
def test_error_flag(corrupt):
    """A bad beat offered but not accepted leaves ``error`` low; once accepted it sets
    ``error`` for good, still yields an output, and the good beats around it come out right."""
    dut = Requantizer(CFG)
    good = good_beat(CFG.cols)
    bad = good_beat(CFG.cols)
    corrupt(bad)
    value = requantize(1000, 3 << 29, -3, 5).item()

    check_error_flag(dut, good, bad, [value] * CFG.cols)
