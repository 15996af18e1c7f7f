import dataclasses
import random
import re
from pathlib import Path

import pytest

from jalapeno import csr, csr_doc
from jalapeno.csr import Access, Register
from jalapeno.isa import CoreError, Field, Queue
from rtl.config import PRESETS, JalapenoConfig

CUSTOM = [
    JalapenoConfig(rows=3, cols=5, acc_depth=64, bus_width=128, addr_width=40, spad_bytes=4096,
                   max_row=100, read_fifo_depth=7),
    JalapenoConfig(rows=1, cols=1, acc_depth=2, read_fifo_depth=3, bus_width=32, addr_width=16,
                   spad_bytes=1024, max_row=1, queue_depth=2),
    JalapenoConfig(rows=64, cols=64, acc_depth=65536, read_fifo_depth=16, bus_width=128,
                   addr_width=64, spad_bytes=1 << 20, max_row=4096, queue_depth=64),
    JalapenoConfig(rows=4, cols=4, acc_depth=256, bus_width=32, spad_bytes=8192,
                   vector_unit=False),
]


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


# -- the map ------------------------------------------------------------------------------------

def test_offsets_ascending_aligned_inside_window():
    offsets = [reg.offset for reg in csr.REGISTERS]
    assert offsets == sorted(set(offsets))
    assert all(offset % 4 == 0 and 0 <= offset < csr.CSR_BYTES for offset in offsets)


def test_names_unique_upper_snake():
    names = [reg.name for reg in csr.REGISTERS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", name) for name in names)


def test_fields_inside_register_and_disjoint():
    for reg in csr.REGISTERS:
        used = 0
        for f in reg.fields:
            assert 0 <= f.lsb <= f.msb < 32, (reg.name, f.name)
            bits = ((1 << f.width) - 1) << f.lsb
            assert not used & bits, (reg.name, f.name)
            used |= bits
        assert reg.mask == (used if reg.fields else 0xFFFF_FFFF)


def test_reset_values_fit():
    for reg in csr.REGISTERS:
        if reg.reset is None:
            assert reg.name in csr.CONFIG_NAMES and reg.access is Access.RO
        else:
            assert 0 <= reg.reset < 1 << 32 and reg.reset & ~reg.mask == 0, reg.name


def test_every_register_and_field_documented():
    for reg in csr.REGISTERS:
        assert reg.doc.strip(), reg.name
        assert all(f.doc.strip() for f in reg.fields), reg.name


def test_pinned_offsets():
    """The offsets are the hardware/software interface: moving one is a major version."""
    assert csr.MAP_VERSION == (1, 2)
    assert {name: csr.register(name).offset for name in (
        "ID", "VERSION", "CONFIG_ARRAY", "CONFIG_MEMORY", "CONFIG_VECTOR", "CONTROL", "STATUS",
        "ERROR_CODE", "ERROR_ADDR_LO", "PROGRAM_BASE_LO", "PROGRAM_LENGTH", "WINDOW_BASE_LO",
        "WINDOW_LIMIT_LO", "IRQ_ENABLE", "IRQ_STATUS", "CYCLES_LO", "INSTRUCTIONS_HI",
    )} == {
        "ID": 0x00, "VERSION": 0x04, "CONFIG_ARRAY": 0x08, "CONFIG_MEMORY": 0x0C,
        "CONFIG_VECTOR": 0x10, "CONTROL": 0x20, "STATUS": 0x24, "ERROR_CODE": 0x28,
        "ERROR_ADDR_LO": 0x30, "PROGRAM_BASE_LO": 0x40, "PROGRAM_LENGTH": 0x48,
        "WINDOW_BASE_LO": 0x50, "WINDOW_LIMIT_LO": 0x58, "IRQ_ENABLE": 0x60, "IRQ_STATUS": 0x64,
        "CYCLES_LO": 0x80, "INSTRUCTIONS_HI": 0xD4,
    }


def test_access_kinds():
    kinds = {reg.name: reg.access for reg in csr.REGISTERS}
    assert kinds["CONTROL"] is Access.WO
    assert kinds["IRQ_STATUS"] is Access.W1C
    assert {name for name, kind in kinds.items() if kind is Access.RW} == {
        "PROGRAM_BASE_LO", "PROGRAM_BASE_HI", "PROGRAM_LENGTH", "WINDOW_BASE_LO",
        "WINDOW_BASE_HI", "WINDOW_LIMIT_LO", "WINDOW_LIMIT_HI", "IRQ_ENABLE"}
    assert all(kinds[f"{name}_{half}"] is Access.RO
               for name in (*csr.counter_names(), "ERROR_ADDR") for half in ("LO", "HI"))


def test_id_and_version():
    assert csr.register("ID").reset.to_bytes(4, "little") == b"JLPN"
    assert csr.unpack("VERSION", csr.register("VERSION").reset) == {"minor": 2, "major": 1}


def test_64_bit_pairs():
    """Every ``_LO`` starts at a multiple of 8 with its ``_HI`` next, and the reverse."""
    names = {reg.name for reg in csr.REGISTERS}
    for reg in csr.REGISTERS:
        if reg.name.endswith("_LO"):
            hi = csr.register(reg.name[:-3] + "_HI")
            assert reg.offset % 8 == 0 and hi.offset == reg.offset + 4
            assert hi.access is reg.access
        if reg.name.endswith("_HI"):
            assert reg.name[:-3] + "_LO" in names


def test_counters():
    names = csr.counter_names()
    per_queue = [f"{q.name}_{kind}" for q in Queue for kind in ("BUSY", "STALL")]
    assert names == ("CYCLES", *per_queue, "MACS", "DMA_READ_BYTES", "DMA_WRITE_BYTES",
                     "INSTRUCTIONS")
    offsets = [csr.register(f"{name}_LO").offset for name in names]
    assert offsets == list(range(offsets[0], offsets[0] + 8 * len(names), 8))
    assert all(csr.register(f"{name}_{half}").reset == 0
               for name in names for half in ("LO", "HI"))


def test_status_has_a_busy_bit_per_queue():
    fields = {f.name: f for f in csr.register("STATUS").fields}
    assert [fields[f"{q.name.lower()}_busy"].lsb for q in Queue] == [8, 9, 10]
    assert {name: fields[name].lsb for name in ("busy", "done", "error")} == {
        "busy": 0, "done": 1, "error": 2}


def test_error_code_holds_every_core_error():
    (code,) = csr.register("ERROR_CODE").fields
    assert max(CoreError) < code.limit
    assert all(e.name in code.doc for e in CoreError)


def test_program_base_is_instruction_aligned():
    assert csr.register("PROGRAM_BASE_LO").mask == 0xFFFF_FFE0


@pytest.mark.parametrize(("registers", "message"), [
    ((Register("ID", 0, Access.RO, "x"), Register("ID", 4, Access.RO, "y")),
     "CSR name 'ID' is repeated"),
    ((Register("Id", 0, Access.RO, "x"),), "CSR name 'Id' is not upper snake case"),
    ((Register("A", 0, Access.RO, "x"), Register("B", 6, Access.RO, "y")),
     "B offset 0x6 is not a multiple of 4 above the previous CSR's and below 0x100"),
    ((Register("A", 8, Access.RO, "x"), Register("B", 4, Access.RO, "y")),
     "B offset 0x4 is not a multiple of 4 above the previous CSR's and below 0x100"),
    ((Register("A", 8, Access.RO, "x"), Register("B", 8, Access.RO, "y")),
     "B offset 0x8 is not a multiple of 4 above the previous CSR's and below 0x100"),
    ((Register("A", 0x100, Access.RO, "x"),),
     "A offset 0x100 is not a multiple of 4 above the previous CSR's and below 0x100"),
    ((Register("A", 0, Access.RO, "x", fields=(Field("f", 30, 3, "x"),)),),
     "A.f bits [32:30] leave the 32-bit register"),
    ((Register("A", 0, Access.RO, "x", fields=(Field("f", 0, 0, "x"),)),),
     "A.f bits [-1:0] leave the 32-bit register"),
    ((Register("A", 0, Access.RO, "x", fields=(Field("f", 0, 4, "x"),
                                                Field("g", 3, 2, "x"))),),
     "A.g overlaps another field"),
    ((Register("A", 0, Access.RO, "x", fields=(Field("f", 0, 1, "x"),
                                                Field("f", 1, 1, "x"))),),
     "A.f is repeated"),
    ((Register("A", 0, Access.RO, "x", fields=(Field("f", 0, 4, "x"),), reset=0x10),),
     "A reset 0x10 does not fit its fields"),
    ((Register("A", 0, Access.RO, "x", reset=1 << 32),),
     "A reset 0x100000000 does not fit its fields"),
])
def test_check_map_rejects(registers, message):
    with raises_exactly(ValueError, message):
        csr.check_map(registers)


# -- lookups ------------------------------------------------------------------------------------

def test_lookups_agree():
    for reg in csr.REGISTERS:
        assert csr.register(reg.name) is reg
        assert csr.by_offset(reg.offset) is reg


@pytest.mark.parametrize(("name", "message"), [
    ("NOPE", "no CSR named 'NOPE'"),
    ("id", "no CSR named 'id'"),
    (0, "no CSR named 0"),
])
def test_register_unknown(name, message):
    with raises_exactly(ValueError, message):
        csr.register(name)


@pytest.mark.parametrize(("offset", "message"), [
    (0x18, "no CSR at offset 0x18"),
    (0x2, "no CSR at offset 0x2"),
    (0x100, "no CSR at offset 0x100"),
    (False, "no CSR at offset False"),
    ("0x0", "no CSR at offset '0x0'"),
])
def test_by_offset_unknown(offset, message):
    with raises_exactly(ValueError, message):
        csr.by_offset(offset)


# -- configuration discovery --------------------------------------------------------------------

def test_config_params_cover_the_config():
    params = [p.param for p in csr.CONFIG_PARAMS]
    assert sorted(params) == sorted(f.name for f in dataclasses.fields(JalapenoConfig)
                                    if f.name != "name")
    for p in csr.CONFIG_PARAMS:
        assert p.field in {f.name for f in csr.register(p.register).fields}
    assert csr.CONFIG_NAMES == ("CONFIG_ARRAY", "CONFIG_MEMORY", "CONFIG_VECTOR", "CONFIG_CORE")


@pytest.mark.parametrize("config", [*PRESETS.values(), *CUSTOM],
                         ids=[*PRESETS, *(f"custom{i}" for i in range(len(CUSTOM)))])
def test_config_round_trip(config):
    values = csr.config_registers(config)
    assert set(values) == set(csr.CONFIG_NAMES)
    assert all(0 <= value < 1 << 32 for value in values.values())
    discovered = csr.config_from_registers(values)
    assert discovered == dataclasses.replace(config, name="discovered")
    assert csr.config_registers(discovered) == values


def test_config_encoding():
    values = csr.config_registers(CUSTOM[0])
    assert values == {
        "CONFIG_ARRAY": 3 | 5 << 8 | 6 << 16 | 7 << 24,
        "CONFIG_MEMORY": 16 | 40 << 8 | 12 << 16,
        "CONFIG_VECTOR": 100,
        "CONFIG_CORE": 8,
    }


def test_config_vector_unit_absent():
    """A core without a vector unit sets CONFIG_VECTOR.absent; 0 there, as every core of map
    1.0 reads, is a core with one."""
    matrix_only = dataclasses.replace(PRESETS["tiny"], name="discovered", vector_unit=False)
    values = csr.config_registers(matrix_only)
    assert values["CONFIG_VECTOR"] == PRESETS["tiny"].max_row | 1 << 16
    assert csr.unpack("CONFIG_VECTOR", values["CONFIG_VECTOR"])["absent"] == 1
    assert csr.config_from_registers(values) == matrix_only
    values["CONFIG_VECTOR"] &= 0xFFFF
    assert csr.config_from_registers(values).vector_unit is True


def test_config_queue_depth():
    """CONFIG_CORE.queue_depth gives the queues' entries; 0 there, as every core of a map
    before 1.2 reads, is the 8 those cores have."""
    shallow = dataclasses.replace(PRESETS["tiny"], name="discovered", queue_depth=2)
    values = csr.config_registers(shallow)
    assert values["CONFIG_CORE"] == 2
    assert csr.config_from_registers(values) == shallow
    values["CONFIG_CORE"] = 0
    assert csr.config_from_registers(values).queue_depth == 8


def test_config_from_a_full_register_dump():
    values = {reg.name: reg.reset for reg in csr.REGISTERS if reg.reset is not None}
    values.update(csr.config_registers(PRESETS["tiny"]))
    assert csr.config_from_registers(values) == dataclasses.replace(PRESETS["tiny"],
                                                                    name="discovered")


def test_config_ignores_reserved_bits():
    values = csr.config_registers(PRESETS["default"])
    values["CONFIG_MEMORY"] |= 0xFF00_0000
    values["CONFIG_VECTOR"] |= 0xFFFE_0000
    values["CONFIG_CORE"] |= 0xFFFF_FF00
    assert csr.config_from_registers(values) == dataclasses.replace(PRESETS["default"],
                                                                    name="discovered")


def _default_with(name, **fields):
    values = csr.config_registers(PRESETS["default"])
    values[name] = csr.pack(name, **{**csr.unpack(name, values[name]), **fields})
    return values


@pytest.mark.parametrize(("values", "message"), [
    ({"CONFIG_ARRAY": 0, "CONFIG_MEMORY": 0, "CONFIG_CORE": 8},
     "missing configuration CSRs: CONFIG_VECTOR"),
    ({}, "missing configuration CSRs: CONFIG_ARRAY, CONFIG_MEMORY, CONFIG_VECTOR, CONFIG_CORE"),
    ({**csr.config_registers(PRESETS["tiny"]), "BOGUS": 1}, "no CSR named 'BOGUS'"),
    ({**csr.config_registers(PRESETS["tiny"]), "CONFIG_VECTOR": -1},
     "a CONFIG_VECTOR value must be an integer in [0, 2**32), not -1"),
    (_default_with("CONFIG_ARRAY", rows=0), "rows must be between 1 and 64, not 0"),
    (_default_with("CONFIG_ARRAY", acc_depth_log2=0),
     "acc_depth must be between 2 and 65536, not 1"),
    (_default_with("CONFIG_MEMORY", bus_bytes=6), "bus_width must be 32, 64 or 128, not 48"),
    (_default_with("CONFIG_VECTOR", max_row=0), "max_row must be between 1 and 4096, not 0"),
])
def test_config_from_registers_rejects(values, message):
    with raises_exactly(ValueError, message):
        csr.config_from_registers(values)


# -- pack and unpack ----------------------------------------------------------------------------

@pytest.mark.parametrize("reg", [reg for reg in csr.REGISTERS if reg.fields], ids=lambda r: r.name)
def test_pack_unpack_round_trip(reg):
    rng = random.Random(reg.offset)
    for _ in range(50):
        values = {f.name: rng.randrange(f.limit) for f in reg.fields}
        word = csr.pack(reg, **values)
        assert word & ~reg.mask == 0
        assert csr.unpack(reg, word) == values
        assert csr.pack(reg.name, **values) == word
    ones = {f.name: f.limit - 1 for f in reg.fields}
    assert csr.pack(reg, **ones) == reg.mask
    assert csr.unpack(reg, 0xFFFF_FFFF) == ones


def test_pack_places_fields():
    assert csr.pack("CONTROL", soft_reset=True) == 0b10
    assert csr.pack("STATUS", busy=1, compute_busy=1) == 1 | 1 << 9
    assert csr.pack("VERSION", major=2, minor=3) == 0x0002_0003
    assert csr.pack("IRQ_STATUS") == 0


def test_unpack_without_fields():
    assert csr.unpack("CYCLES_LO", 0x1234) == {}


@pytest.mark.parametrize(("reg", "fields", "message"), [
    ("CONTROL", {"stop": 1}, "CONTROL has no field 'stop'"),
    ("CYCLES_LO", {"value": 1}, "CYCLES_LO has no field 'value'"),
    ("CONTROL", {"start": 2}, "CONTROL.start must be an integer in [0, 2), not 2"),
    ("VERSION", {"major": -1}, "VERSION.major must be an integer in [0, 65536), not -1"),
    ("CONFIG_ARRAY", {"rows": 1.0}, "CONFIG_ARRAY.rows must be an integer in [0, 256), not 1.0"),
    ("NOPE", {}, "no CSR named 'NOPE'"),
])
def test_pack_rejects(reg, fields, message):
    with raises_exactly(ValueError, message):
        csr.pack(reg, **fields)


@pytest.mark.parametrize(("value", "message"), [
    (1 << 32, "a STATUS value must be an integer in [0, 2**32), not 4294967296"),
    (-1, "a STATUS value must be an integer in [0, 2**32), not -1"),
    (True, "a STATUS value must be an integer in [0, 2**32), not True"),
    ("1", "a STATUS value must be an integer in [0, 2**32), not '1'"),
])
def test_unpack_rejects(value, message):
    with raises_exactly(ValueError, message):
        csr.unpack("STATUS", value)


# -- 64-bit values ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, 0xFFFF_FFFF, 1 << 32, 0x0123_4567_89AB_CDEF,
                                   (1 << 64) - 1])
def test_split_join_round_trip(value):
    lo, hi = csr.split64(value)
    assert 0 <= lo < 1 << 32 and 0 <= hi < 1 << 32
    assert hi << 32 | lo == value
    assert csr.join64(lo, hi) == value


def test_split64_halves():
    assert csr.split64(0x0123_4567_89AB_CDEF) == (0x89AB_CDEF, 0x0123_4567)


@pytest.mark.parametrize(("value", "message"), [
    (-1, "a 64-bit value must be an integer in [0, 2**64), not -1"),
    (1 << 64, "a 64-bit value must be an integer in [0, 2**64), not 18446744073709551616"),
    (False, "a 64-bit value must be an integer in [0, 2**64), not False"),
])
def test_split64_rejects(value, message):
    with raises_exactly(ValueError, message):
        csr.split64(value)


@pytest.mark.parametrize(("lo", "hi", "message"), [
    (1 << 32, 0, "lo must be an integer in [0, 2**32), not 4294967296"),
    (0, -1, "hi must be an integer in [0, 2**32), not -1"),
    (0, 1.5, "hi must be an integer in [0, 2**32), not 1.5"),
])
def test_join64_rejects(lo, hi, message):
    with raises_exactly(ValueError, message):
        csr.join64(lo, hi)


# -- docs/csr.md --------------------------------------------------------------------------------

def test_doc_is_current():
    assert csr_doc.DOC_PATH == Path(__file__).resolve().parents[1] / "docs" / "csr.md"
    assert csr_doc.DOC_PATH.read_text() == csr_doc.csr_markdown(), \
        "docs/csr.md is stale: run `python -m jalapeno.csr_doc --write`"


def test_doc_lists_every_register_and_field():
    text = csr_doc.csr_markdown()
    for reg in csr.REGISTERS:
        assert f"| `0x{reg.offset:03X}` | `{reg.name}` | {reg.access.name} |" in text
        for f in reg.fields:
            assert f"| `{f.name}` |" in text
    for p in csr.CONFIG_PARAMS:
        assert f"| `{p.param}` | `{p.register}.{p.field}` |" in text


def test_doc_main_prints(capsys):
    csr_doc.main([])
    assert capsys.readouterr().out == csr_doc.csr_markdown()
