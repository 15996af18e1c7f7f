"""The runtime's :class:`~jalapeno.runtime.Device` on its ``golden`` and ``rtl`` backends:
the same programs leave the same memory, error code and address and untimed counters on
both; the configuration is read back from the CSRs; byte-granular memory access; the exact
errors; state that carries over from run to run; failures of the simulator surface as
exceptions.

The ``rtl`` tests share one device per module (building and starting it takes seconds) and
run in the xdist group of the core's cocotb bench on the default preset, whose build
(``build/sim/<sim>/core_system_default``) they share, so two workers never build it at
once. ``JALAPENO_SIM`` selects the simulator, as for the benches.
"""

import os
import re
import shutil
import signal
from types import SimpleNamespace

import numpy as np
import pytest

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Opcode, Queue, encode
from jalapeno.runtime import BACKENDS, Device, DeviceError, open_device
from jalapeno.runtime import rtl as rtl_backend
from jalapeno.runtime.golden import GoldenDevice
from rtl.config import JalapenoConfig, preset
from sim.core_system import DECERR, MEMORY_BYTES, SLVERR
from sim.toolchain import BUILD
from verification.models.core import vector_pitch
from verification.programs import GemmPlan, gemm_program, tiled_gemm
from verification.stimulus import random_int8

SIM = os.environ.get("JALAPENO_SIM", "verilator")
SEED = 20240611
#: The marks of a test that uses the rtl device.
RTL = [pytest.mark.cocotb, pytest.mark.xdist_group(f"{SIM}-core-default")]
#: Bytes from address 0 the program tests fill with random bytes and compare.
TEST_BYTES = 1 << 18
PROGRAM, A_AT, W_AT, C_AT = 0x1000, 0x8000, 0x10000, 0x20000
#: The counters that do not depend on timing: every backend keeps them.
UNTIMED = ("MACS", "DMA_READ_BYTES", "DMA_WRITE_BYTES", "INSTRUCTIONS")


def on_rtl(test):
    """Mark ``test`` as using the rtl device (:data:`RTL`)."""
    for mark in RTL:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def rtl():
    if SIM == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    with open_device("rtl", preset="default", sim=SIM) as dev:
        yield dev


@pytest.fixture
def golden():
    """A golden device whose memory answers as the rtl one's does."""
    with open_device("golden", slverr=SLVERR, decerr=DECERR) as dev:
        yield dev


@pytest.fixture(params=["golden", pytest.param("rtl", marks=RTL)])
def device(request):
    if request.param == "rtl":
        return request.getfixturevalue("rtl")
    return request.getfixturevalue("golden")


# -- opening ----------------------------------------------------------------------------------


def test_unknown_backend():
    with pytest.raises(ValueError) as info:
        open_device("fpga2")
    assert str(info.value) == "unknown backend 'fpga2'; choose one of golden, rtl"
    assert BACKENDS == ("golden", "rtl")


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"^unknown preset 'huge'; choose one of tiny, "):
        open_device("golden", preset="huge")


@pytest.mark.parametrize("name", ["tiny", "default", "large"])
def test_golden_discovers_its_config(name):
    with open_device("golden", preset=name, memory_bytes=1 << 16) as dev:
        assert isinstance(dev, Device) and dev.backend == "golden"
        assert dev.config == preset(name)
        assert dev.memory_bytes == 1 << 16


def test_config_outside_the_presets_is_discovered():
    config = JalapenoConfig(rows=4, cols=8, acc_depth=128)
    with GoldenDevice(config, 4096) as dev:
        assert dev.config == JalapenoConfig(name="discovered", rows=4, cols=8, acc_depth=128)


def test_golden_without_a_vector_unit():
    """The golden backend's core is the config's: without a vector unit it is discovered so,
    and a VECTOR stops it with NO_VECTOR_UNIT at its address."""
    config = JalapenoConfig(name="matrix_only", rows=4, cols=4, acc_depth=256,
                            vector_unit=False)
    with GoldenDevice(config, 4096) as dev:
        assert dev.config == JalapenoConfig(name="discovered", rows=4, cols=4, acc_depth=256,
                                            vector_unit=False)
        assert dev.read_csr("CONFIG_VECTOR") >> 16 == 1
        words = [encode(Opcode.SYNC), encode(Opcode.VECTOR, op=2, rows=1, length=4),
                 encode(Opcode.END)]
        dev.write(0, b"".join(w.to_bytes(INSTRUCTION_BYTES, "little") for w in words))
        result = dev.run(0, len(words))
        assert (result.code, result.addr) == (CoreError.NO_VECTOR_UNIT, INSTRUCTION_BYTES)
        assert result.counters["INSTRUCTIONS"] == 1


@on_rtl
def test_rtl_discovers_its_config(rtl):
    assert rtl.backend == "rtl"
    assert rtl.config == preset("default")
    assert rtl.memory_bytes == MEMORY_BYTES
    assert rtl.read_csr("ID") == int.from_bytes(b"JLPN", "little")


def test_closed_device():
    with open_device("golden") as dev:
        pass
    assert dev.closed
    dev.close()
    with pytest.raises(DeviceError) as info:
        dev.read(0, 4)
    assert str(info.value) == "the golden device is closed"


# -- memory -----------------------------------------------------------------------------------


def test_unaligned_round_trip(device):
    """Writes at every offset and length within and across bus words, and reads of any
    range: the bytes written, and their neighbours untouched."""
    rng = np.random.default_rng(SEED)
    at = 0x3000
    model = rng.integers(0, 256, 256, dtype=np.uint8)
    device.write(at, model)
    for addr, length in [(1, 3), (7, 2), (9, 17), (16, 8), (30, 0), (3, 100), (200, 1),
                         (16, 3), (8, 13), (5, 11), (40, 1)]:
        data = rng.integers(0, 256, length, dtype=np.uint8)
        device.write(at + addr, data.tobytes() if length % 2 else data)
        model[addr:addr + length] = data
        got = device.read(at, len(model))
        assert got.dtype == np.uint8 and np.array_equal(got, model), \
            f"seed {SEED}, {device.backend}: after writing {length} bytes at +{addr}"
    for addr, length in [(5, 1), (13, 11), (0, 256), (255, 1), (64, 0)]:
        assert np.array_equal(device.read(at + addr, length), model[addr:addr + length]), \
            f"seed {SEED}, {device.backend}: reading {length} bytes at +{addr}"


def test_write_takes_array_bytes(device):
    words = np.array([0x11223344, -1], np.int32)
    device.write(0x4000, words)
    assert device.read(0x4000, 8).tobytes() == words.tobytes()
    for data, kind in (([1, 2], "list"), (np.array([b""], object), "ndarray")):
        with pytest.raises(TypeError) as info:
            device.write(0x4000, data)
        assert str(info.value) == f"data must be bytes or a NumPy array of numbers, not {kind}"


def test_bad_ranges(device):
    size = device.memory_bytes
    cases = [
        (lambda: device.read(size - 4, 5),
         f"memory range [{size - 4:#x}, {size + 1:#x}) is not inside the {size:#x} bytes of "
         "memory"),
        (lambda: device.read(-1, 2),
         f"memory range [-0x1, 0x1) is not inside the {size:#x} bytes of memory"),
        (lambda: device.write(size, b"x"),
         f"memory range [{size:#x}, {size + 1:#x}) is not inside the {size:#x} bytes of memory"),
        (lambda: device.read(0, -1), "length must be non-negative, not -1"),
        (lambda: device.run(PROGRAM + 4, 1),
         f"program base must be a non-negative multiple of {INSTRUCTION_BYTES}, not 0x1004"),
        (lambda: device.run(PROGRAM, 1, window=(0, size + 8)),
         f"window must lie within the {size:#x} bytes of memory, not (0, {size + 8})"),
        (lambda: device.run(PROGRAM, 1, limit=0),
         "limit must be a positive number of cycles, not 0"),
        (lambda: device.read_csr("NOPE"), "no CSR named 'NOPE'"),
        (lambda: device.write_csr("PROGRAM_LENGTH", 1 << 32),
         "a PROGRAM_LENGTH value must be an integer in [0, 2**32), not 4294967296"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message, f"{device.backend}"
    assert device.read(size, 0).shape == (0,)


# -- CSRs -------------------------------------------------------------------------------------


def test_csr_pairs(device):
    """64-bit quantities by their base name, and only the bits the hardware implements."""
    device.write_csr("WINDOW_BASE", 0x1234_5678)
    assert device.read_csr("WINDOW_BASE") == 0x1234_5678
    assert device.read_csr("WINDOW_BASE_LO") == 0x1234_5678
    # addr_width 32: the high half and PROGRAM_BASE's low five bits are not implemented.
    device.write_csr("PROGRAM_BASE", 0x7_0000_1234)
    assert device.read_csr("PROGRAM_BASE") == 0x1220
    device.write_csr("ID", 0)  # read-only
    assert device.read_csr("ID") == int.from_bytes(b"JLPN", "little")


def test_golden_has_no_timing(golden):
    golden.write(PROGRAM, encode(Opcode.END).to_bytes(INSTRUCTION_BYTES, "little"))
    result = golden.run(PROGRAM, 1)
    assert (result.code, result.cycles, result.counters["INSTRUCTIONS"]) == \
        (CoreError.NONE, None, 1)
    assert set(result.counters) == set(UNTIMED)
    with pytest.raises(ValueError) as info:
        golden.read_csr("CYCLES")
    assert str(info.value) == "the golden backend does not model CYCLES_LO: it has no timing"


# -- programs: the same on both backends ------------------------------------------------------


def _gemm_case(cfg, rng):
    m, k_tiles = 12, 4
    a = random_int8(rng, (m, k_tiles * cfg.rows))
    w = random_int8(rng, (k_tiles * cfg.rows, cfg.cols))
    image = rng.integers(0, 256, TEST_BYTES, dtype=np.uint8)
    image[A_AT:A_AT + a.size] = a.view(np.uint8).reshape(-1)
    image[W_AT:W_AT + w.size] = w.view(np.uint8).reshape(-1)

    def check(memory):
        rows = memory[C_AT:C_AT + m * cfg.acc_row_bytes].view("<i4").reshape(m, -1)
        return np.array_equal(rows[:, :cfg.cols], a.astype(np.int64) @ w)

    return image, gemm_program(cfg, A_AT, W_AT, C_AT, m, k_tiles), CoreError.NONE, None, check


def _tiled_case(cfg, rng, m, k, n, plan=None):
    a, w = random_int8(rng, (m, k)), random_int8(rng, (k, n))
    words, layout = tiled_gemm(cfg, m, k, n, a_at=A_AT, w_at=W_AT, c_at=C_AT, plan=plan)
    assert layout.end <= TEST_BYTES and W_AT + layout.w_bytes <= C_AT
    image = rng.integers(0, 256, TEST_BYTES, dtype=np.uint8)
    layout.place(image, a, w)
    return image, words, CoreError.NONE, None, \
        lambda memory: np.array_equal(layout.read_c(memory), a.astype(np.int64) @ w)


def _bad_gemm_case(cfg, rng):
    """A LOAD, then a GEMM with ``k = rows + 1``: BAD_FIELD at the GEMM, the LOAD done."""
    words = [encode(Opcode.LOAD, ext_addr=A_AT, local_addr=0, rows=4, row_bytes=64,
                    ext_stride=64, local_stride=64, push_next=1),
             encode(Opcode.GEMM, m=2, k=cfg.rows + 1, n=cfg.cols, pop_prev=1),
             encode(Opcode.END)]
    image = rng.integers(0, 256, TEST_BYTES, dtype=np.uint8)
    return image, words, CoreError.BAD_FIELD, PROGRAM + INSTRUCTION_BYTES, None


def _slverr_case(cfg, rng):
    """A LOAD from the memory's SLVERR range (the golden device is given the rtl one's),
    then a SYNC the compute queue may complete first: after an error found while running
    only the code and address are defined (docs/core.md, Errors), and the RTL counts the
    SYNC and END among INSTRUCTIONS."""
    words = [encode(Opcode.LOAD, ext_addr=SLVERR[0][0] + 0x100, local_addr=0, rows=1,
                    row_bytes=64), encode(Opcode.SYNC, queue=Queue.COMPUTE), encode(Opcode.END)]
    image = rng.integers(0, 256, TEST_BYTES, dtype=np.uint8)
    return image, words, CoreError.DMA_SLVERR, PROGRAM, None


#: ``name: factory(config, rng)`` giving ``(image, words, code, addr, check)``: the memory
#: image, the program, the code and address it must stop with (``addr`` None for 0) and a
#: check of C in the memory it leaves (or None).
CASES = {
    "gemm_program": _gemm_case,
    "tiled_gemm 64x64x64": lambda cfg, rng: _tiled_case(cfg, rng, 64, 64, 64),
    "tiled_gemm ragged": lambda cfg, rng: _tiled_case(cfg, rng, 37, 3 * cfg.rows, 5 * cfg.cols),
    "tiled_gemm small blocks": lambda cfg, rng: _tiled_case(
        cfg, rng, 32, 32, 32, GemmPlan(m_block=16, n_group=1, k_step=1)),
    "GEMM k > rows": _bad_gemm_case,
    "LOAD from SLVERR": _slverr_case,
}
#: Cases that stop with an error found while running: only their code and address are
#: compared.
RUNTIME_ERRORS = {"LOAD from SLVERR"}


@pytest.mark.parametrize("name", list(CASES))
@on_rtl
def test_same_program(rtl, golden, name):
    """The program on both backends from the same memory image: the same code and address,
    untimed counters and bytes of memory; and the product NumPy's."""
    seed = SEED + sorted(CASES).index(name)
    image, words, code, addr, check = CASES[name](rtl.config, np.random.default_rng(seed))
    results, memories = {}, {}
    for dev in (golden, rtl):
        dev.write(0, image)
        dev.load_program(PROGRAM, words)
        results[dev.backend] = dev.run(PROGRAM, len(words), window=(0, MEMORY_BYTES - 0x800))
        memories[dev.backend] = dev.read(0, TEST_BYTES)
    where = f"seed {seed}, {name}"
    got, want = results["rtl"], results["golden"]
    expected = (code, 0 if addr is None else addr)
    assert (want.code, want.addr) == expected, f"{where}: golden {want.code.name} {want.addr:#x}"
    assert (got.code, got.addr) == expected, f"{where}: rtl {got.code.name} {got.addr:#x}"
    if name in RUNTIME_ERRORS:
        return
    assert {k: got.counters[k] for k in UNTIMED} == want.counters, \
        f"{where}: rtl counters {got.counters}, golden {want.counters}"
    assert got.cycles == got.counters["CYCLES"] > 0 and want.cycles is None, where
    diff = np.flatnonzero(memories["rtl"] != memories["golden"])
    assert not len(diff), f"{where}: {len(diff)} bytes differ, the first at {diff[0]:#x}"
    if check is not None:
        assert check(memories["rtl"]), f"{where}: C differs from NumPy"


@on_rtl
def test_state_carries_over(rtl, golden):
    """One program loads A and W into the scratchpad; a second multiplies them (no loads)
    and stores C from the accumulator; a third stores the accumulator again."""
    cfg, rng = rtl.config, np.random.default_rng(SEED + 100)
    pitch, m = vector_pitch(cfg), 6
    a, w = random_int8(rng, (m, cfg.rows)), random_int8(rng, (cfg.rows, cfg.cols))
    w_local = m * pitch
    c_bytes = m * cfg.acc_row_bytes
    programs = [
        [encode(Opcode.LOAD, ext_addr=A_AT, local_addr=0, rows=m, row_bytes=cfg.rows,
                ext_stride=cfg.rows, local_stride=pitch),
         encode(Opcode.LOAD, ext_addr=W_AT, local_addr=w_local, rows=cfg.rows,
                row_bytes=cfg.cols, ext_stride=cfg.cols, local_stride=pitch),
         encode(Opcode.END)],
        [encode(Opcode.GEMM, act_addr=0, w_addr=w_local, acc_addr=0, m=m, k=cfg.rows,
                n=cfg.cols, push_next=1),
         encode(Opcode.STORE, ext_addr=C_AT, local_addr=cfg.acc_base, rows=1,
                row_bytes=c_bytes, pop_prev=1),
         encode(Opcode.END)],
        [encode(Opcode.STORE, ext_addr=C_AT + 0x1000, local_addr=cfg.acc_base, rows=1,
                row_bytes=c_bytes),
         encode(Opcode.END)],
    ]
    expected = a.astype(np.int64) @ w
    for dev in (golden, rtl):
        dev.write(0, np.zeros(TEST_BYTES, np.uint8))
        dev.write(A_AT, a)
        dev.write(W_AT, w)
        for index, words in enumerate(programs):
            dev.load_program(PROGRAM, words)
            result = dev.run(PROGRAM, len(words))
            assert result.code == CoreError.NONE, \
                f"seed {SEED + 100}, {dev.backend}: program {index} {result.code.name}"
        for at in (C_AT, C_AT + 0x1000):
            c = dev.read(at, c_bytes).view("<i4").reshape(m, -1)[:, :cfg.cols]
            assert np.array_equal(c, expected), \
                f"seed {SEED + 100}, {dev.backend}: C at {at:#x} differs from NumPy"
    assert np.array_equal(golden.read(0, TEST_BYTES), rtl.read(0, TEST_BYTES))


# -- failures ---------------------------------------------------------------------------------


@on_rtl
def test_rtl_timeout(rtl):
    """A run past its limit raises TimeoutError with the server's message; the core is
    soft-reset and takes the next run."""
    words = gemm_program(rtl.config, A_AT, W_AT, C_AT, 12, 4)
    rtl.load_program(PROGRAM, words)
    with pytest.raises(TimeoutError) as info:
        rtl.run(PROGRAM, len(words), limit=20)
    assert str(info.value) == \
        "rtl device (default): no interrupt within 20 cycles; the core was soft-reset"
    rtl.load_program(PROGRAM, [encode(Opcode.END)])
    result = rtl.run(PROGRAM, 1)
    assert (result.code, result.counters["INSTRUCTIONS"]) == (CoreError.NONE, 1)


@on_rtl
def test_rtl_simulator_dies():
    """A simulator that exits under the device gives DeviceError, not a hang."""
    if SIM == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    dev = open_device("rtl", sim=SIM)
    os.kill(dev.pid, signal.SIGKILL)
    with pytest.raises(DeviceError, match=r"^rtl: core_system \(default\) on \w+: the "
                                          r"simulator exited .*; see .*sim\.log$"):
        dev.read_csr("ID")
    dev.close()
    assert dev.closed and dev.log.exists()  # kept after a failure
    shutil.rmtree(dev.log.parent)


def _fake_build(tmp_path):
    return SimpleNamespace(preset="default", sim="verilator", build_dir=tmp_path)


def test_rtl_build_fails(monkeypatch):
    """A failed build is a DeviceError naming the build log."""
    def build_bench(*args, **kwargs):
        raise RuntimeError("Command failed with return code: 2")

    monkeypatch.setattr(rtl_backend, "build_bench", build_bench)
    with pytest.raises(DeviceError) as info:
        open_device("rtl")
    log = BUILD / "sim" / "verilator" / "core_system_default" / "build.log"
    assert str(info.value) == ("rtl: building core_system (default) on verilator failed "
                               f"(Command failed with return code: 2); see {log}")


def test_rtl_simulator_exits_before_connecting(monkeypatch, tmp_path):
    """A simulator that exits without connecting is a DeviceError at once, not a wait for
    the connection's timeout."""
    def simulate_bench(*args, **kwargs):
        raise RuntimeError("Command failed with return code: 1")

    monkeypatch.setattr(rtl_backend, "build_bench", lambda *a, **k: _fake_build(tmp_path))
    monkeypatch.setattr(rtl_backend, "simulate_bench", simulate_bench)
    with pytest.raises(DeviceError) as info:
        open_device("rtl")
    message = str(info.value).replace(str(tmp_path), "<build>")
    assert re.fullmatch(r"rtl: core_system \(default\) on verilator: the simulator exited "
                        r"\(RuntimeError: Command failed with return code: 1\); see "
                        r"<build>/device/\d+-\d+/sim\.log", message), message
