# amaranth: UnusedElaboratable=no
"""The core's simulation top and what builds it: the top's ports and Verilog (its memory a
hand-written array the bench reaches by name), the Verilator configuration that keeps only
what the benches touch public, and the Icarus fix-up of blocks Yosys gives no time-0
trigger."""

from amaranth.back import verilog

from rtl.config import preset
from sim.core_system import STORAGE_MODULE, CoreSystem, StorageAXIRam
from sim.ports import port_names
from sim.runner import _public_config
from sim.verilog import icarus_time_zero_fix


def test_ports_are_the_hosts():
    """From outside the top is a host's view of the core: the CSR port and the interrupt."""
    names = port_names(CoreSystem(preset("tiny")).signature)
    assert "irq" in names and all(n == "irq" or n.startswith("csr__") for n in names)


def test_storage_ram_verilog():
    """The RAM's words are an instance of the storage module named ``storage`` inside
    ``memory``, as big as asked, with no bit-by-bit initial contents."""
    ram = StorageAXIRam(addr_width=32, data_width=64, id_width=2, size=1 << 16)
    text = verilog.convert(ram, name="ram", emit_src=False)
    assert f"{STORAGE_MODULE} #(" in text and ") storage (" in text
    assert ".DEPTH(32'd8192)" in text
    assert "memory[0] =" not in text


def test_public_config(tmp_path):
    """Only the top's ports and the memory array are public on Verilator for the core's
    tops; other tops keep the cocotb runner's everything-public."""
    args = _public_config("core_system", tmp_path)
    assert args[0] == "--no-public-flat-rw"
    assert (tmp_path / "public.vlt").read_text().splitlines() == [
        "`verilator_config",
        'public_flat_rw -module "core_system" -var "*"',
        f'public_flat_rw -module "{STORAGE_MODULE}" -var "memory"',
    ]
    assert _public_config("dma_system", tmp_path) == []


def test_icarus_fix_triggers_single_assignments():
    """A one-assignment ``always @*`` block gets a register that changes at ``#0``, so it
    runs once at time 0; blocks with ``begin`` are left alone."""
    text = ("  always @*\n    payload[67] = bank;\n"
            "  always @* begin\n    x = 1;\n  end\n")
    fixed = icarus_time_zero_fix(text)
    assert fixed == (
        "  reg \\$jalapeno_time_zero_0 ;\n"
        "  initial #0 \\$jalapeno_time_zero_0 = 0;\n"
        "  always @* begin\n"
        "    if (\\$jalapeno_time_zero_0 ) begin end\n"
        "    payload[67] = bank;\n"
        "  end\n"
        "  always @* begin\n    x = 1;\n  end\n")
