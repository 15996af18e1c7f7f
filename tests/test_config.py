import dataclasses
import re

import pytest

from rtl.config import PRESETS, JalapenoConfig, preset

VALID = dict(rows=4, cols=4, acc_depth=16)


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def make(**overrides):
    return JalapenoConfig(**{**VALID, **overrides})


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"name": 3}, TypeError, "name must be an identifier string, not 3"),
    ({"name": "my-config"}, TypeError, "name must be an identifier string, not 'my-config'"),
    ({"name": ""}, TypeError, "name must be an identifier string, not ''"),
    ({"rows": True}, TypeError, "rows must be an integer, not True"),
    ({"rows": 4.0}, TypeError, "rows must be an integer, not 4.0"),
    ({"rows": 0}, ValueError, "rows must be between 1 and 64, not 0"),
    ({"rows": 65}, ValueError, "rows must be between 1 and 64, not 65"),
    ({"cols": "4"}, TypeError, "cols must be an integer, not '4'"),
    ({"cols": -1}, ValueError, "cols must be between 1 and 64, not -1"),
    ({"cols": 65}, ValueError, "cols must be between 1 and 64, not 65"),
    ({"acc_depth": None}, TypeError, "acc_depth must be an integer, not None"),
    ({"acc_depth": 1}, ValueError, "acc_depth must be between 2 and 65536, not 1"),
    ({"acc_depth": 131072}, ValueError, "acc_depth must be between 2 and 65536, not 131072"),
    ({"acc_depth": 24}, ValueError, "acc_depth must be a power of two, not 24"),
    ({"read_fifo_depth": False}, TypeError, "read_fifo_depth must be an integer, not False"),
    ({"read_fifo_depth": 2}, ValueError, "read_fifo_depth must be between 3 and 16, not 2"),
    ({"read_fifo_depth": 17}, ValueError, "read_fifo_depth must be between 3 and 16, not 17"),
    ({"bus_width": 48}, ValueError, "bus_width must be 32, 64 or 128, not 48"),
    ({"bus_width": True}, ValueError, "bus_width must be 32, 64 or 128, not True"),
    ({"addr_width": 15}, ValueError, "addr_width must be between 16 and 64, not 15"),
    ({"addr_width": "32"}, TypeError, "addr_width must be an integer, not '32'"),
    ({"spad_bytes": 512}, ValueError, "spad_bytes must be between 1024 and 1048576, not 512"),
    ({"spad_bytes": 3072}, ValueError, "spad_bytes must be a power of two, not 3072"),
    ({"max_row": 1.5}, TypeError, "max_row must be an integer, not 1.5"),
    ({"max_row": 0}, ValueError, "max_row must be between 1 and 4096, not 0"),
    ({"max_row": 4097}, ValueError, "max_row must be between 1 and 4096, not 4097"),
    ({"vector_unit": 1}, TypeError, "vector_unit must be True or False, not 1"),
    ({"vector_unit": "no"}, TypeError, "vector_unit must be True or False, not 'no'"),
    ({"vector_unit": None}, TypeError, "vector_unit must be True or False, not None"),
    ({"queue_depth": 1}, ValueError, "queue_depth must be between 2 and 64, not 1"),
    ({"queue_depth": 65}, ValueError, "queue_depth must be between 2 and 64, not 65"),
    ({"queue_depth": 8.0}, TypeError, "queue_depth must be an integer, not 8.0"),
])
def test_bad_parameter(overrides, error, message):
    with raises_exactly(error, message):
        make(**overrides)


@pytest.mark.parametrize("overrides", [
    {"rows": 1, "cols": 1, "acc_depth": 2, "read_fifo_depth": 3, "max_row": 1,
     "bus_width": 32, "addr_width": 16, "spad_bytes": 1024, "queue_depth": 2},
    {"rows": 64, "cols": 64, "acc_depth": 65536, "read_fifo_depth": 16, "max_row": 4096,
     "bus_width": 128, "addr_width": 64, "spad_bytes": 1 << 20, "queue_depth": 64},
])
def test_range_limits_accepted(overrides):
    cfg = make(**overrides)
    assert tuple(getattr(cfg, key) for key in overrides) == tuple(overrides.values())


def test_defaults_and_derived():
    cfg = make(acc_depth=512)
    assert cfg.name == "custom"
    assert cfg.read_fifo_depth == 4
    assert cfg.max_row == 1024
    assert cfg.queue_depth == 8
    assert cfg.vector_unit is True
    assert (cfg.bus_width, cfg.bus_bytes, cfg.addr_width) == (64, 8, 32)
    assert (cfg.spad_bytes, cfg.spad_addr_width) == (65536, 16)
    assert (1 << cfg.row_length_width) - 1 > 4096
    assert (cfg.in_width, cfg.acc_width) == (8, 32)
    assert cfg.acc_addr_width == 9
    assert cfg.macs_per_cycle == 16


def test_keyword_only():
    message = "JalapenoConfig.__init__() takes 1 positional argument but 5 were given"
    with raises_exactly(TypeError, message):
        JalapenoConfig("tiny", 4, 4, 256)


@pytest.mark.parametrize(("name", "rows", "cols"), [
    ("tiny", 4, 4),
    ("default", 8, 8),
    ("large", 16, 16),
])
def test_preset_sizes(name, rows, cols):
    cfg = preset(name)
    assert cfg is PRESETS[name]
    assert (cfg.name, cfg.rows, cfg.cols) == (name, rows, cols)
    assert cfg.acc_depth > 1 and 1 << cfg.acc_addr_width == cfg.acc_depth


def test_presets_have_the_vector_unit():
    assert all(cfg.vector_unit is True for cfg in PRESETS.values())
    assert make(vector_unit=False).vector_unit is False


def test_preset_names():
    assert list(PRESETS) == ["tiny", "default", "large"]


def test_unknown_preset_lists_presets():
    message = "unknown preset 'nope'; choose one of tiny, default, large"
    with raises_exactly(ValueError, message):
        preset("nope")


@pytest.mark.parametrize("field", ["rows", "cols", "acc_depth", "name", "in_width"])
def test_frozen(field):
    cfg = preset("tiny")
    with raises_exactly(dataclasses.FrozenInstanceError, f"cannot assign to field {field!r}"):
        setattr(cfg, field, 2)
    assert (cfg.name, cfg.rows, cfg.cols, cfg.acc_depth, cfg.in_width) == ("tiny", 4, 4, 256, 8)


def test_equal_configs_hash_equal():
    assert hash(make()) == hash(make())
