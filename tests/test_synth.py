"""Tests of the synthesis report flow that need no Yosys run: parsing, reports, table, chart, CLI.

Runs of :func:`fpga.synth.run` and :func:`fpga.synth.main` use a fake Yosys that answers each
synthesis script with a canned ``stat -json`` document.
"""

import functools
import json
import os
import re
import shutil
import sys

import pytest

import fpga.synth
from fpga.synth import (
    FAMILIES,
    TOPS,
    SynthesisError,
    YosysRun,
    format_table,
    main,
    plot,
    run,
    stat_fields,
    synthesize,
    yosys_version,
)
from rtl.config import preset

CREATOR = "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang /opt/wasi-sdk/bin/clang++ 22.1.0)"


def stat(cells, top="matrix_unit"):
    """A ``stat -json`` document of a flattened design with ``cells``."""
    return {"creator": CREATOR, "invocation": "stat -json ",
            "modules": {f"\\{top}": {"num_cells_by_type": cells}},
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


def test_logic_mapping_rule_per_top():
    """Only matrix units of at most 64 MACs are also mapped without DSPs."""
    assert TOPS["matrix_unit"].mappings(preset("tiny")) == ("dsp", "logic")
    assert TOPS["matrix_unit"].mappings(preset("default")) == ("dsp", "logic")
    assert TOPS["matrix_unit"].mappings(preset("large")) == ("dsp",)
    assert TOPS["vector_unit"].mappings(preset("tiny")) == ("dsp",)


def test_yosys_run_names():
    assert str(YosysRun("vector_unit", "tiny", "ice40", "dsp")) == "vector_unit tiny/ice40 (dsp)"
    assert YosysRun("matrix_unit", "tiny", "ice40", "dsp").stem == "matrix_unit_tiny_ice40"
    assert YosysRun("matrix_unit", "tiny", "ecp5", "logic").stem \
        == "matrix_unit_tiny_ecp5_logic"


# Canned cells per synthesis script. Each block of tiny/ice40 fits alone, but their DSPs
# (5 + 4 of 8) and RAMs (20 + 12 of 30) do not fit together.
MU_ICE40 = {"SB_LUT4": 1000, "SB_CARRY": 100, "SB_DFF": 900, "SB_MAC16": 5, "SB_RAM40_4K": 20}
VU_ICE40 = {"SB_LUT4": 3000, "SB_CARRY": 500, "SB_DFFE": 400, "SB_MAC16": 4, "SB_RAM40_4K": 12}
MU_ICE40_LOGIC = {"SB_LUT4": 4000, "SB_CARRY": 700, "SB_DFF": 900, "SB_RAM40_4K": 20}
MU_ECP5 = {"LUT4": 2000, "CCU2C": 300, "TRELLIS_FF": 5000, "MULT18X18D": 64, "DP16KD": 8}
VU_ECP5 = {"LUT4": 9000, "CCU2C": 1500, "TRELLIS_FF": 2000, "MULT18X18D": 48, "DP16KD": 4}
MU_ECP5_LOGIC = {"LUT4": 20000, "CCU2C": 4000, "TRELLIS_FF": 5000, "DP16KD": 8}

CANNED = {
    "synth_ice40 -dsp -top matrix_unit": MU_ICE40,
    "synth_ice40 -top matrix_unit": MU_ICE40_LOGIC,
    "synth_ice40 -dsp -top vector_unit": VU_ICE40,
    "synth_ecp5 -top matrix_unit": MU_ECP5,
    "synth_ecp5 -nodsp -top matrix_unit": MU_ECP5_LOGIC,
    "synth_ecp5 -top vector_unit": VU_ECP5,
}

# Answers ``yosys -q -l LOG -p "read_verilog V; SCRIPT; tee -q -o STAT stat -json"`` in its
# working directory from cells.json beside it, appending SCRIPT to calls.txt; exits with 1
# for a script cells.json lacks.
FAKE_YOSYS = """\
import json, pathlib, sys
here = pathlib.Path(__file__).parent
args = sys.argv[1:]
commands = args[args.index("-p") + 1].split("; ")
with open(here / "calls.txt", "a") as calls:
    calls.write(commands[1] + "\\n")
pathlib.Path(args[args.index("-l") + 1]).write_text("fake Yosys log\\n")
stat = json.loads((here / "cells.json").read_text()).get(commands[1])
if stat is None:
    sys.exit(1)
pathlib.Path(commands[2].split()[3]).write_text(json.dumps(stat))
"""


class FakeYosys:
    """A fake Yosys command in ``folder`` with the :data:`CANNED` answers less ``missing``."""

    def __init__(self, folder, missing=()):
        folder.mkdir()
        self.folder = folder
        self.command = str(folder / "yosys")
        (folder / "yosys").write_text(f"#!{sys.executable}\n{FAKE_YOSYS}")
        (folder / "yosys").chmod(0o755)
        (folder / "cells.json").write_text(json.dumps({
            script: stat(cells, script.split()[-1])
            for script, cells in CANNED.items() if script not in missing}))

    @property
    def calls(self):
        """The synthesis scripts run so far, in the order they started."""
        path = self.folder / "calls.txt"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake_generate(tmp_path, monkeypatch):
    """Replace Verilog generation with empty modules; yields the (top, preset) generated."""
    generated = []

    def generate(top, preset_name):
        generated.append((top, preset_name))
        path = tmp_path / "verilog" / f"{top}_{preset_name}.v"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"module {top}; endmodule\n")
        return path

    monkeypatch.setattr(fpga.synth, "generate", generate)
    return generated


needs_posix = pytest.mark.skipif(os.name != "posix", reason="the fake Yosys is a #! script")


@needs_posix
def test_run_writes_reports(tmp_path, fake_generate, capsys):
    yosys = FakeYosys(tmp_path / "fake")
    out_dir = tmp_path / "synth"
    reports = run([("tiny", "ice40"), ("default", "ecp5"), ("tiny", "ice40")],
                  yosys=yosys.command, out_dir=out_dir)
    assert sorted(fake_generate) == [("matrix_unit", "default"), ("matrix_unit", "tiny"),
                                     ("vector_unit", "default"), ("vector_unit", "tiny")]
    # Both arrays have at most 64 MACs, so every matrix unit is also mapped in logic; no
    # vector unit is.
    assert sorted(yosys.calls) == sorted(CANNED)
    assert sorted(path.name for path in out_dir.iterdir()) == sorted([
        "tiny_ice40.json", "default_ecp5.json", "summary.json", "resources.png",
        *(f"{top}_{job}{suffix}.{kind}" for top, job, suffix in [
            ("matrix_unit", "tiny_ice40", ""), ("matrix_unit", "tiny_ice40", "_logic"),
            ("vector_unit", "tiny_ice40", ""), ("matrix_unit", "default_ecp5", ""),
            ("matrix_unit", "default_ecp5", "_logic"), ("vector_unit", "default_ecp5", "")]
          for kind in ("log", "stat.json"))])
    assert [(r["preset"], r["family"]) for r in reports] == [("tiny", "ice40"),
                                                             ("default", "ecp5")]

    tiny = json.loads((out_dir / "tiny_ice40.json").read_text())
    assert tiny == reports[0]
    assert list(tiny) == ["preset", "family", "device", "rows", "cols", "macs", "blocks",
                          "total"]
    assert (tiny["device"], tiny["rows"], tiny["cols"], tiny["macs"]) == ("iCE40UP5K", 4, 4, 16)
    assert list(tiny["blocks"]) == ["matrix_unit", "vector_unit"]
    matrix, vector = tiny["blocks"]["matrix_unit"], tiny["blocks"]["vector_unit"]
    assert matrix.items() >= {
        "mapping": "dsp", "script": "synth_ice40 -dsp -top matrix_unit",
        "yosys": "Yosys 0.70 (git sha1 28ba3cb92)", "log": "matrix_unit_tiny_ice40.log",
        **stat_fields(stat(MU_ICE40), FAMILIES["ice40"])}.items()
    assert isinstance(matrix["seconds"], float)
    assert matrix["logic"].items() >= {
        "mapping": "logic", "script": "synth_ice40 -top matrix_unit",
        "log": "matrix_unit_tiny_ice40_logic.log", "luts": 4000, "dsps": 0}.items()
    assert vector["script"] == "synth_ice40 -dsp -top vector_unit"
    assert vector["log"] == "vector_unit_tiny_ice40.log"
    assert vector["logic"] is None
    assert matrix["fits"] and vector["fits"]

    # The total sums the DSP mappings and is measured against the device.
    total = tiny["total"]
    assert {k: total[k] for k in ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")} \
        == {"luts": 4000, "carries": 600, "ffs": 1300, "dsps": 9, "rams": 32, "spram": 0,
            "lutram": 0}
    assert total["mapping"] == "dsp"
    assert total["capacity"] == FAMILIES["ice40"].capacity
    assert total["utilization"] == {"luts": round(4000 / 5280, 4), "ffs": round(1300 / 5280, 4),
                                    "dsps": 1.125, "rams": round(32 / 30, 4), "spram": 0.0}
    assert total["fits"] is False
    assert total["cells"] == {"SB_CARRY": 600, "SB_DFF": 900, "SB_DFFE": 400, "SB_LUT4": 4000,
                              "SB_MAC16": 9, "SB_RAM40_4K": 32}

    ecp5 = reports[1]
    assert ecp5["total"]["luts"] == 11000
    assert ecp5["total"]["utilization"]["luts"] == round((11000 + 2 * 1800) / 83640, 4)
    assert ecp5["total"]["fits"] is True

    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["tops"] == ["matrix_unit", "vector_unit"]
    assert summary["reports"] == reports
    assert (out_dir / "resources.png").read_bytes().startswith(b"\x89PNG")

    out = capsys.readouterr().out
    assert "synth  vector_unit tiny/ice40 (dsp) ...\n" in out
    assert re.search(r"^synth  matrix_unit default/ecp5 \(logic\) \d+ s$", out, re.M)
    assert len(out.splitlines()) == 2 * len(CANNED)


@needs_posix
def test_run_longest_first(tmp_path, fake_generate):
    yosys = FakeYosys(tmp_path / "fake")
    run([("tiny", "ice40"), ("large", "ecp5")], yosys=yosys.command, out_dir=tmp_path / "synth",
        workers=1)
    # Vector units (by lanes) before matrix units; a large array's DSP mapping before a tiny
    # one's logic mapping before its DSP mapping. No logic mapping of a 256-MAC array.
    assert yosys.calls == ["synth_ecp5 -top vector_unit", "synth_ice40 -dsp -top vector_unit",
                           "synth_ecp5 -top matrix_unit", "synth_ice40 -top matrix_unit",
                           "synth_ice40 -dsp -top matrix_unit"]


@needs_posix
def test_run_one_top(tmp_path, fake_generate):
    yosys = FakeYosys(tmp_path / "fake")
    [report] = run([("tiny", "ice40")], tops=["vector_unit"], yosys=yosys.command,
                   out_dir=tmp_path / "synth")
    assert fake_generate == [("vector_unit", "tiny")]
    assert yosys.calls == ["synth_ice40 -dsp -top vector_unit"]
    assert list(report["blocks"]) == ["vector_unit"]
    block = report["blocks"]["vector_unit"]
    assert {k: report["total"][k] for k in ("luts", "dsps", "utilization", "fits", "cells")} \
        == {k: block[k] for k in ("luts", "dsps", "utilization", "fits", "cells")}


@needs_posix
def test_run_failure_names_run_and_writes_no_report(tmp_path, fake_generate):
    yosys = FakeYosys(tmp_path / "fake", missing={"synth_ecp5 -top vector_unit"})
    out_dir = tmp_path / "synth"
    with pytest.raises(SynthesisError, match=r"^vector_unit default/ecp5 \(dsp\): Yosys exited "
                                             r"with 1; see .*vector_unit_default_ecp5\.log$"):
        run([("default", "ecp5")], yosys=yosys.command, out_dir=out_dir, workers=1)
    # The longest run failed first; the others were cancelled unless already started.
    assert yosys.calls[0] == "synth_ecp5 -top vector_unit"
    assert not list(out_dir.glob("*_ecp5.json"))
    assert not (out_dir / "summary.json").exists()


def result(family, mapping, cells):
    """A result of one mapping as :func:`fpga.synth.synthesize` returns it."""
    return {"mapping": mapping, "seconds": 12.3, **stat_fields(stat(cells), FAMILIES[family])}


def report(preset, family, blocks, total):
    """A report as :func:`fpga.synth.run` writes it, from canned cell counts.

    ``blocks`` maps each top to its DSP-mapping cells and its logic-mapping cells (or None).
    """
    macs = {"tiny": 16, "default": 64}[preset]
    return {"preset": preset, "family": family, "macs": macs,
            "blocks": {top: {**result(family, "dsp", cells),
                             "logic": logic and result(family, "logic", logic)}
                       for top, (cells, logic) in blocks.items()},
            "total": {"mapping": "dsp",
                      **stat_fields(stat(total), FAMILIES[family])}}


REPORTS = [
    report("tiny", "ice40",
           {"matrix_unit": (ICE40_CELLS, {"SB_LUT4": 4714, "SB_DFF": 2050}),
            "vector_unit": (VU_ICE40, None)},
           {"SB_LUT4": 1339 + 3000, "SB_DFF": 2050 + 400, "SB_MAC16": 20, "SB_RAM40_4K": 20}),
    report("default", "ecp5", {"matrix_unit": (ECP5_CELLS, None)}, ECP5_CELLS),
]


def test_table():
    lines = format_table(REPORTS).splitlines()
    assert lines[0].split() == ["preset", "family", "top", "mapping", "LUTs", "FFs", "DSPs",
                                "RAMs", "fits", "time"]
    assert lines[1].split() == ["tiny", "ice40", "matrix_unit", "dsp", "1339", "25%", "2050",
                                "39%", "16", "200%", "8", "27%", "no", "12", "s"]
    assert lines[2].split()[:6] == ["tiny", "ice40", "matrix_unit", "logic", "4714", "89%"]
    assert lines[3].split()[:4] == ["tiny", "ice40", "vector_unit", "dsp"]
    # The total: counts and utilization of both blocks together, and no time of its own.
    assert lines[4].split() == ["tiny", "ice40", "total", "dsp", "4339", "82%", "2450", "46%",
                                "20", "250%", "20", "67%", "no"]
    assert lines[5].split()[:4] == ["default", "ecp5", "matrix_unit", "dsp"]
    assert lines[6].split()[:4] == ["default", "ecp5", "total", "dsp"]
    assert lines[6].split()[-1] == "yes"
    assert len(lines) == 7
    # Names left-aligned, figures right-aligned.
    assert lines[3].index("vector_unit") == lines[4].index("total") == lines[0].index("top")
    assert len({len(line) for line in lines[:4]}) == 1


def test_plot(tmp_path):
    path = tmp_path / "resources.png"
    plot(REPORTS, path)
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(shutil.which("false") is None, reason="needs a failing command")
def test_yosys_failure_names_job_and_log(tmp_path):
    verilog = tmp_path / "top.v"
    verilog.write_text("module matrix_unit; endmodule\n")
    with pytest.raises(SynthesisError, match=r"^matrix_unit tiny/ecp5 \(dsp\): Yosys exited "
                                             r"with 1; see .*matrix_unit_tiny_ecp5\.log$"):
        synthesize(verilog, YosysRun("matrix_unit", "tiny", "ecp5", "dsp"), yosys="false",
                   out_dir=tmp_path)


def test_missing_yosys(tmp_path):
    with pytest.raises(SynthesisError,
                       match=r"^vector_unit tiny/ice40 \(logic\): cannot run Yosys"):
        synthesize(tmp_path / "top.v", YosysRun("vector_unit", "tiny", "ice40", "logic"),
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


def test_cli_rejects_unknown_top(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--top", "alu", "--preset", "tiny"])
    assert exit_info.value.code == 2
    # Newer Pythons list the choices without quotes.
    assert re.fullmatch(r"python -m fpga\.synth: error: argument --top: invalid choice: 'alu' "
                        r"\(choose from '?matrix_unit'?, '?vector_unit'?\)\n",
                        capsys.readouterr().err)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, fake_generate):
    """Run :func:`fpga.synth.main` on a fake Yosys, writing under ``tmp_path``.

    Yields a function of the argv and the canned scripts to leave out, returning the exit code
    (0 when main returns), stdout and stderr. ``os.environ``, which main updates with the
    toolchain's variables, is restored afterwards.
    """
    monkeypatch.setattr(fpga.synth, "run",
                        functools.partial(fpga.synth.run, out_dir=tmp_path / "synth"))
    environ = os.environ.copy()

    def cli(argv, missing=()):
        monkeypatch.setenv("YOSYS", FakeYosys(tmp_path / "fake", missing).command)
        try:
            main(argv)
            code = 0
        except SystemExit as exit_info:
            code = exit_info.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield cli
    os.environ.clear()
    os.environ.update(environ)


@needs_posix
def test_cli_runs_chosen_tops(cli, tmp_path):
    code, out, err = cli(["--top", "vector_unit", "--preset", "tiny", "--family", "ice40"])
    assert (code, err) == (0, "")
    table = [line.split()[:4] for line in out.splitlines() if line.startswith("tiny ")]
    assert table == [["tiny", "ice40", "vector_unit", "dsp"], ["tiny", "ice40", "total", "dsp"]]
    assert out.splitlines()[-1].startswith("reports in ")
    summary = json.loads((tmp_path / "synth" / "summary.json").read_text())
    assert summary["tops"] == ["vector_unit"]


@needs_posix
def test_cli_yosys_failure_is_one_line(cli):
    code, out, err = cli(["--preset", "tiny", "--family", "ice40"],
                         missing={"synth_ice40 -dsp -top matrix_unit"})
    assert code == 1
    assert re.fullmatch(r"python -m fpga\.synth: error: matrix_unit tiny/ice40 \(dsp\): Yosys "
                        r"exited with 1; see \S+matrix_unit_tiny_ice40\.log\n", err)
