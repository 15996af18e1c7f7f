# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.back import verilog

from rtl.bus.stream_sim import check_error_flag, check_pipeline, pipeline_timing
from rtl.config import JalapenoConfig, preset
from rtl.vector.clamp import Clamp
from verification.stimulus import random_int8

CONFIGS = [
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="cols3"),
    pytest.param(JalapenoConfig(rows=2, cols=1, acc_depth=16), id="cols1"),
]
CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16)


def random_beat(rng, cols):
    """A vector and a range, the full int8 range and single-value ranges turning up often."""
    choice = rng.random()
    if choice < 0.2:
        low, high = -128, 127
    elif choice < 0.3:
        low = high = int(rng.integers(-128, 128))
    else:
        low, high = sorted(int(v) for v in rng.integers(-128, 128, size=2))
    return {"data": random_int8(rng, cols).tolist(), "act_min": low, "act_max": high}


def expected(beat):
    return np.clip(beat["data"], beat["act_min"], beat["act_max"]).tolist()


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 4$"):
        Clamp(4)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.5)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_model(cfg, idle, backpressure, seed):
    """Random vectors and ranges come out as ``np.clip``, in order, under random idle cycles
    and backpressure; valid ranges never raise ``error``."""
    rng = np.random.default_rng(seed)
    beats = [random_beat(rng, cfg.cols) for _ in range(120)]
    check_pipeline(Clamp(cfg), beats, expected, seed=seed, idle=idle, backpressure=backpressure)


def test_latency_without_stalls():
    """One vector per cycle, each result one cycle after its input; ``busy`` exactly while
    one is in flight."""
    rng = np.random.default_rng(5)
    dut = Clamp(CFG)
    beats = [random_beat(rng, CFG.cols) for _ in range(6)]
    taken, offered = pipeline_timing(dut, beats, [0, 0, 3, 0, 1, 0])
    assert dut.latency == 1
    assert [edge - 1 for edge, _ in offered] == taken
    assert [out for _, out in offered] == [expected(beat) for beat in beats]


def test_error_flag():
    """``act_min > act_max`` sets the sticky flag once accepted, and only then."""
    good = {"data": [-100, 0, 100], "act_min": -50, "act_max": 50}
    bad = {**good, "act_min": 1, "act_max": 0}
    check_error_flag(Clamp(CFG), good, bad, [-50, 0, 50])


def test_converts_to_verilog():
    assert "module" in verilog.convert(Clamp(preset("default")), name="clamp")
