"""The DMA golden model (:mod:`verification.models.dma`) on its own: known-answer burst
splits, the error codes' precedence, the golden copy and the random descriptors."""

import numpy as np
import pytest

from rtl.bus.axi import BURST_BOUNDARY, MAX_BURST_BEATS, Resp
from rtl.dma.descriptor import DmaError
from verification.models.dma import (
    REQUIRED,
    Desc,
    RefBurst,
    bus_outcome,
    expected_code,
    first_difference,
    golden,
    random_descs,
    reference_bursts,
    span,
)


def test_bursts_split_at_4k():
    """A ragged row crossing a 4 KiB boundary: two bursts, the last beat partly strobed."""
    bursts = reference_bursts(Desc(0x0FF0, 0x40, 1, 37, 0, 0), 8)
    assert bursts == [RefBurst(0x0FF0, 2, 0x40, 16), RefBurst(0x1000, 3, 0x50, 21)]
    assert bursts[0].strobes(8) == [0xFF, 0xFF]
    assert bursts[1].strobes(8) == [0xFF, 0xFF, 0x1F]


def test_bursts_split_at_256_beats():
    """Rows of more than 256 beats: 256 beats, then the rest; no burst spans two rows."""
    bursts = reference_bursts(Desc(0, 0x100, 2, 256 * 4 + 5, 0x800, 0x600), 4)
    assert bursts == [RefBurst(0x000, 256, 0x100, 1024), RefBurst(0x400, 2, 0x500, 5),
                      RefBurst(0x800, 256, 0x700, 1024), RefBurst(0xC00, 2, 0xB00, 5)]
    assert bursts[1].strobes(4) == [0xF, 0x1]


def test_bursts_split_at_both():
    """A 256-beat row starting 16 beats before a 4 KiB boundary splits there only."""
    assert reference_bursts(Desc(0x0F00, 0, 1, 4096, 0, 0), 16) == [
        RefBurst(0x0F00, 16, 0, 256), RefBurst(0x1000, 240, 256, 3840)]


@pytest.mark.parametrize("desc", [Desc(0x1001, 3, 0, 5, 1, 1), Desc(0x1000, 0, 4, 0, 8, 8)])
def test_empty(desc):
    assert desc.empty
    assert reference_bursts(desc, 8) == []
    assert span(desc, 8) == (0x1001 if desc.rows == 0 else 0x1000,) * 2
    assert expected_code(desc, 8, (0, 0), 0) == DmaError.NONE


def test_span():
    desc = Desc(0x1000, 0x20, 3, 9, 0x100, 0x40)
    assert span(desc, 8) == (0x1000, 0x1210)
    assert span(desc, 8, ext=False) == (0x20, 0xB0)


def test_error_precedence():
    """Empty, then MISALIGNED, then WINDOW, then SPAD_RANGE (``rtl/dma/check.py``)."""
    nb, spad_bytes, window = 8, 0x4000, (0x1000, 0x2000)
    everything = Desc(0x0FFC, 0x3FF8, 2, 64, 8, 8)  # misaligned, below window, past spad
    assert expected_code(everything, nb, window, spad_bytes) == DmaError.MISALIGNED
    assert expected_code(Desc(0x0FF8, 0x3FF8, 2, 64, 8, 8), nb, window, spad_bytes) \
        == DmaError.WINDOW
    assert expected_code(Desc(0x1000, 0x3FF8, 2, 64, 8, 8), nb, window, spad_bytes) \
        == DmaError.SPAD_RANGE
    assert expected_code(Desc(0x1000, 0x3FB8, 2, 64, 8, 8), nb, window, spad_bytes) \
        == DmaError.NONE  # ends exactly at the scratchpad's end
    # The window counts whole beats: 9 bytes are 2 beats.
    assert expected_code(Desc(0x1FF0, 0, 1, 9, 0, 0), nb, window, spad_bytes) == DmaError.NONE
    assert expected_code(Desc(0x1FF0, 0, 1, 9, 0, 0), nb, (0x1000, 0x1FFC), spad_bytes) \
        == DmaError.WINDOW
    assert expected_code(Desc(0x1000, 0, 0, 64, 3, 3), nb, (0, 0), 0) == DmaError.NONE


def test_bus_outcome():
    bursts = reference_bursts(Desc(0x0FF0, 0, 2, 37, 0x100, 64), 8)

    def response(addr, length, size, burst):
        assert size == 3
        return Resp.DECERR if addr <= 0x10F0 < addr + 8 * (length + 1) else Resp.OKAY

    assert bus_outcome(response, bursts, 8) == (2, DmaError.DECERR)
    assert bus_outcome(lambda *_: Resp.OKAY, bursts, 8) == (3, DmaError.NONE)
    assert bus_outcome(lambda *_: Resp.SLVERR, bursts, 8) == (0, DmaError.SLVERR)


def test_golden_copy_moves_strobed_bytes_only():
    """A load and a store of two ragged rows: the bytes past each row's end, even in its last
    beat, stay as they were, and the inputs are not changed."""
    memory = np.arange(0x2000, dtype=np.uint32).astype(np.uint8)
    spad = np.zeros(0x100, np.uint8)
    desc = Desc(0x0FF0, 0x10, 2, 21, 0x40, 0x20)
    new_memory, new_spad = golden([desc], 8, load=True, memory=memory, spad=spad)
    assert (new_memory == memory).all() and not spad.any()
    want = np.zeros(0x100, np.uint8)
    want[0x10:0x25] = memory[0x0FF0:0x1005]
    want[0x30:0x45] = memory[0x1030:0x1045]
    assert (new_spad == want).all(), first_difference(new_spad, want)
    stored, same = golden([desc], 8, load=False, memory=memory, spad=want)
    assert (same == want).all() and (stored == memory).all()
    stored, _ = golden([desc], 8, load=False, memory=np.zeros_like(memory), spad=want)
    assert np.flatnonzero(stored).tolist() == [a for a in [*range(0x0FF0, 0x1005),
                                                           *range(0x1030, 0x1045)] if memory[a]]


def test_first_difference():
    a = np.zeros(16, np.uint8)
    assert first_difference(a, a.copy()) == "equal"
    b = a.copy()
    b[[3, 9]] = [0x12, 0x34]
    assert first_difference(a, b, 0x100) == \
        "2 bytes differ, the first at 0x103 (got 0x00, expected 0x12)"


@pytest.mark.parametrize("nb", [4, 8, 16, 32])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_descs(nb, seed):
    """Seeded, valid inside their ranges, disjoint, and with every required case: 1-byte rows,
    4 KiB crossings, rows of more than 256 beats, strides far longer than rows, empty ones."""
    ext, spad = (0x800, 0x3_0000), (0x100, 0x1_0000)
    descs = random_descs(np.random.default_rng(seed), nb, 14, ext=ext, spad=spad)
    assert descs == random_descs(np.random.default_rng(seed), nb, 14, ext=ext, spad=spad)
    assert len(descs) >= len(REQUIRED)
    full = [d for d in descs if not d.empty]
    assert len(full) < len(descs)
    for d in full:
        assert expected_code(d, nb, ext, spad[1]) == DmaError.NONE, d
        assert span(d, nb, ext=False)[0] >= spad[0]
    for key in (lambda d: span(d, nb), lambda d: span(d, nb, ext=False)):
        extents = sorted(key(d) for d in full)
        assert all(a[1] <= b[0] for a, b in zip(extents, extents[1:], strict=False))
    assert any(d.row_bytes == 1 for d in full)
    assert any(d.row_bytes > MAX_BURST_BEATS * nb for d in full)
    assert any(d.ext_stride >= -(-d.row_bytes // nb) * nb + 5 * nb for d in full)
    assert any(b.addr % BURST_BOUNDARY == 0 and b.addr != d.ext_addr + r * d.ext_stride
               for d in full for r in range(d.rows)
               for b in reference_bursts(Desc(d.ext_addr + r * d.ext_stride, 0, 1, d.row_bytes,
                                              0, 0), nb)
               if b.beats < MAX_BURST_BEATS)
