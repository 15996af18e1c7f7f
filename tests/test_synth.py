"""Tests of the synthesis report flow that need no Yosys run: parsing, table, chart, CLI."""

import shutil

import pytest

from fpga.synth import (
    FAMILIES,
    SynthesisError,
    format_table,
    main,
    plot,
    stat_fields,
    synthesize,
    yosys_version,
)

CREATOR = "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang /opt/wasi-sdk/bin/clang++ 22.1.0)"


def stat(cells):
    """A ``stat -json`` document of a flattened design with ``cells``."""
    return {"creator": CREATOR, "invocation": "stat -json ",
            "modules": {"\\matrix_unit": {"num_cells_by_type": cells}},
            "design": {"num_cells": sum(cells.values()), "num_cells_by_type": cells}}


ICE40_CELLS = {"$scopeinfo": 23, "SB_CARRY": 289, "SB_DFF": 272, "SB_DFFE": 384,
               "SB_DFFESR": 337, "SB_DFFSR": 1057, "SB_LUT4": 1339, "SB_MAC16": 16,
               "SB_RAM40_4K": 8, "SB_SPRAM256KA": 2}

ECP5_CELLS = {"$scopeinfo": 71, "CCU2C": 882, "DP16KD": 8, "L6MUX21": 7, "LUT4": 1892,
              "MULT18X18D": 64, "ALU54B": 2, "PFUMX": 279, "TRELLIS_DPR16X4": 64,
              "TRELLIS_FF": 5768}


def test_ice40_fields():
    fields = stat_fields(stat(ICE40_CELLS), FAMILIES["ice40"])
    assert {k: fields[k] for k in ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")} \
        == {"luts": 1339, "carries": 289, "ffs": 272 + 384 + 337 + 1057, "dsps": 16, "rams": 8,
            "spram": 2, "lutram": 0}
    assert fields["capacity"] == {"luts": 5280, "ffs": 5280, "dsps": 8, "rams": 30, "spram": 4}
    # SB_CARRY shares a logic cell with a LUT4, so LUT utilization is the LUT4 count alone.
    assert fields["utilization"] == {"luts": round(1339 / 5280, 4), "ffs": round(2050 / 5280, 4),
                                     "dsps": 2.0, "rams": round(8 / 30, 4), "spram": 0.5}
    assert fields["fits"] is False
    assert fields["cells"] == ICE40_CELLS


def test_ecp5_fields():
    fields = stat_fields(stat(ECP5_CELLS), FAMILIES["ecp5"])
    assert {k: fields[k] for k in ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")} \
        == {"luts": 1892, "carries": 882, "ffs": 5768, "dsps": 66, "rams": 8, "spram": 0,
            "lutram": 64}
    # A CCU2C takes two LUT4 sites.
    assert fields["utilization"]["luts"] == round((1892 + 2 * 882) / 83640, 4)
    assert fields["utilization"]["dsps"] == round(66 / 156, 4)
    assert set(fields["utilization"]) == {"luts", "ffs", "dsps", "rams"}
    assert fields["fits"] is True


def test_yosys_version_drops_build_path():
    assert yosys_version(stat({})) == "Yosys 0.70 (git sha1 28ba3cb92)"
    assert yosys_version({"creator": "Yosys 0.9+4081"}) == "Yosys 0.9+4081"


def report(preset, family, cells, logic_cells=None):
    """A report as :func:`fpga.synth.run` writes it, from canned cell counts."""
    def result(mapping, cells):
        return {"mapping": mapping, "seconds": 12.3, **stat_fields(stat(cells), FAMILIES[family])}
    macs = {"tiny": 16, "default": 64}[preset]
    return {"preset": preset, "family": family, "macs": macs, **result("dsp", cells),
            "logic": result("logic", logic_cells) if logic_cells else None}


REPORTS = [report("tiny", "ice40", ICE40_CELLS, {"SB_LUT4": 4714, "SB_DFF": 2050}),
           report("default", "ecp5", ECP5_CELLS)]


def test_table():
    lines = format_table(REPORTS).splitlines()
    assert lines[0].split() == ["preset", "family", "mapping", "LUTs", "FFs", "DSPs", "RAMs",
                                "fits", "time"]
    assert lines[1].split() == ["tiny", "ice40", "dsp", "1339", "25%", "2050", "39%", "16",
                                "200%", "8", "27%", "no", "12", "s"]
    assert lines[2].split()[:5] == ["tiny", "ice40", "logic", "4714", "89%"]
    assert lines[3].split()[:3] == ["default", "ecp5", "dsp"]
    assert len(lines) == 4


def test_plot(tmp_path):
    path = tmp_path / "resources.png"
    plot(REPORTS, path)
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(shutil.which("false") is None, reason="needs a failing command")
def test_yosys_failure_names_job_and_log(tmp_path):
    verilog = tmp_path / "top.v"
    verilog.write_text("module matrix_unit; endmodule\n")
    with pytest.raises(SynthesisError,
                       match=r"^tiny/ecp5 \(dsp\): Yosys exited with 1; see .*tiny_ecp5\.log$"):
        synthesize(verilog, "tiny", "ecp5", "dsp", yosys="false", out_dir=tmp_path)


def test_missing_yosys(tmp_path):
    with pytest.raises(SynthesisError, match=r"^tiny/ice40 \(logic\): cannot run Yosys"):
        synthesize(tmp_path / "top.v", "tiny", "ice40", "logic",
                   yosys="no-such-yosys-command", out_dir=tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--family", "virtex"], "argument --family: invalid choice: 'virtex'"),
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
])
def test_cli_rejects_unknown_names(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
