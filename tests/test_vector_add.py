# amaranth: UnusedElaboratable=no

import numpy as np
import pytest

from rtl.bus.stream_sim import (
    check_error_flag,
    check_pipeline,
    pipeline_timing,
)
from rtl.config import JalapenoConfig
from rtl.vector.add import ElementwiseAdd
from verification.models import quant
from verification.models.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    SHIFT_MAX,
    SHIFT_MIN,
    AddParams,
)

CONFIGS = [
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="cols3"),
    pytest.param(JalapenoConfig(rows=2, cols=1, acc_depth=16), id="cols1"),
]
CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16)
MULTIPLIER_MIN = 1 << 30
PARAM_FIELDS = ["input1_zero_point", "input1_multiplier", "input1_shift",
                "input2_zero_point", "input2_multiplier", "input2_shift",
                "output_zero_point", "output_multiplier", "output_shift"]


def random_params(rng):
    """``AddParams`` from random scales, down to the smallest output scale TFLite accepts; a
    third of them with equal input scales and a power-of-two output scale, which makes ties
    of the final rounding common."""
    if rng.random() < 0.3:
        scale = float(2.0 ** rng.integers(-12, 4))
        s1 = s2 = scale
        s_out = scale * float(2.0 ** rng.integers(-18, 3))
    else:
        s1, s2 = 10.0 ** rng.uniform(-4, 1, size=2)
        s_out = max(s1, s2) * 10.0 ** rng.uniform(-6, 1.5)
    zp1, zp2, zp_out = (int(v) for v in rng.integers(INT8_MIN, INT8_MAX + 1, size=3))
    try:
        return AddParams.from_scales(s1, zp1, s2, zp2, s_out, zp_out)
    except ValueError:
        return random_params(rng)


def corner_params(rng):
    """Parameters TFLite accepts as valid but never derives from scales, drawn field by field
    with the edge values often: multipliers near ties, shifts up to :data:`SHIFT_MAX`. Left
    shifts wrap the intermediates, so the outputs expose their lowest bits and every rounding
    step shows."""
    def pick(specials, lo, hi):
        return int(rng.choice(specials)) if rng.random() < 0.4 else int(rng.integers(lo, hi + 1))

    def rescale():
        tie = MULTIPLIER_MIN + ((2 * int(rng.integers(0, 1 << 19)) + 1) << 10)
        return (pick([0, MULTIPLIER_MIN, INT32_MAX, tie], MULTIPLIER_MIN, INT32_MAX),
                pick([SHIFT_MIN, -20, -1, 0, 11, SHIFT_MAX], SHIFT_MIN, SHIFT_MAX))

    zp1, zp2, zp_out = (pick([INT8_MIN, INT8_MAX, 0], INT8_MIN, INT8_MAX) for _ in range(3))
    return AddParams(1.0, zp1, 1.0, zp2, 1.0, zp_out, *rescale(), *rescale(), *rescale())


def make_beat(a, b, params, act_min=INT8_MIN, act_max=INT8_MAX):
    fields = {name: getattr(params, name) for name in PARAM_FIELDS}
    return {"a": list(a), "b": list(b),
            "params": {**fields, "act_min": act_min, "act_max": act_max}}


def random_beat(rng, cols):
    """One input beat, with the int8 extremes turning up often in both inputs."""
    def lane():
        if rng.random() < 0.3:
            return int(rng.choice([INT8_MIN, INT8_MAX, 0, -1]))
        return int(rng.integers(INT8_MIN, INT8_MAX + 1))

    if rng.random() < 0.3:
        act_min, act_max = INT8_MIN, INT8_MAX
    else:
        act_min, act_max = sorted(int(v) for v in rng.integers(INT8_MIN, INT8_MAX + 1, size=2))
    params = corner_params(rng) if rng.random() < 0.3 else random_params(rng)
    return make_beat([lane() for _ in range(cols)], [lane() for _ in range(cols)], params,
                     act_min, act_max)


def expected(beat):
    p = beat["params"]
    params = AddParams(1.0, p["input1_zero_point"], 1.0, p["input2_zero_point"], 1.0,
                       p["output_zero_point"], p["input1_multiplier"], p["input1_shift"],
                       p["input2_multiplier"], p["input2_shift"], p["output_multiplier"],
                       p["output_shift"])
    return quant.add(beat["a"], beat["b"], params, p["act_min"], p["act_max"]).tolist()


def good_beat(cols):
    """Valid parameters: equal scales, output scale twice theirs, zero points 0."""
    return make_beat([40] * cols, [20] * cols, AddParams.from_scales(0.5, 0, 0.5, 0, 1.0, 0))


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        ElementwiseAdd("default")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.2, 0.6)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_model(cfg, idle, backpressure, seed):
    """Random beats come out as ``quant.add`` bit for bit and in order under random idle cycles
    on ``i`` and random backpressure on ``o``; valid parameters never raise ``error``."""
    rng = np.random.default_rng(seed)
    dut = ElementwiseAdd(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(120)]
    check_pipeline(dut, beats, expected, seed=seed, idle=idle, backpressure=backpressure)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_latency_without_stalls(cfg):
    """With ``o.ready`` held high, ``i.ready`` never drops and each output is offered exactly
    ``latency`` cycles after its input was taken, back to back or spaced."""
    rng = np.random.default_rng(0)
    dut = ElementwiseAdd(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(8)]
    taken, offered = pipeline_timing(dut, beats, [0, 0, 0, 2, 0, 7, 1, 0])
    assert dut.latency == 6
    assert [edge - dut.latency for edge, _ in offered] == taken
    assert [out for _, out in offered] == [expected(beat) for beat in beats]


def corrupt_field(field, value):
    def corrupt(beat):
        beat["params"][field] = value
    corrupt.__name__ = f"{field}_{value}"
    return corrupt


def bad_clamp(beat):
    beat["params"]["act_min"], beat["params"]["act_max"] = 1, 0


BAD = [bad_clamp]
for operand in ("input1", "input2", "output"):
    BAD += [corrupt_field(f"{operand}_shift", SHIFT_MIN - 1),
            corrupt_field(f"{operand}_shift", SHIFT_MAX + 1),
            corrupt_field(f"{operand}_multiplier", 1),
            corrupt_field(f"{operand}_multiplier", MULTIPLIER_MIN - 1)]


@pytest.mark.parametrize("corrupt", BAD, ids=lambda corrupt: corrupt.__name__)
def test_error_flag(corrupt):
    """A bad beat offered but not accepted leaves ``error`` low; once accepted it sets
    ``error`` for good, still yields an output, and the good beats around it come out right."""
    dut = ElementwiseAdd(CFG)
    good = good_beat(CFG.cols)
    bad = good_beat(CFG.cols)
    corrupt(bad)
    value = expected(good)
    assert value == [30] * CFG.cols

    check_error_flag(dut, good, bad, value)
