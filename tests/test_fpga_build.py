# amaranth: UnusedElaboratable=no
"""The board builds without running the tools: each board's build plan (pins, clock
constraint, synthesis and place-and-route commands), the PLL settings, the report from a
build's outputs, the energy estimate, and the one-line errors of ``make bitstream``."""

import json

import pytest

from fpga import build
from fpga.boards import BOARDS, array_probe, board, ecp5_pll, ice40_pll
from fpga.energy import MODELS, estimate
from fpga.probe import ArrayProbe
from rtl.bus.stream_sim import simulate


def test_pll_settings_are_the_vendor_tools():
    # icepll -i 12 -o 30 and ecppll -i 25 -o 100 give these.
    assert ice40_pll(12e6, 30e6).dividers == {"DIVR": 0, "DIVF": 79, "DIVQ": 5,
                                              "FILTER_RANGE": 1}
    setting = ecp5_pll(25e6, 100e6)
    assert setting.dividers == {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 6}
    assert setting.out_hz == 100e6
    with pytest.raises(ValueError, match="^no PLL setting gives 2000 MHz$"):
        ice40_pll(12e6, 2e9)


@pytest.mark.parametrize("name", list(BOARDS))
def test_build_plan(name, tmp_path):
    brd = BOARDS[name]
    directory = build.plan(brd, tmp_path)
    script = (directory / "build_top.sh").read_text()
    synth = (directory / "top.ys").read_text()
    assert "stat -json" in synth
    assert ("synth_ice40 -dsp" if brd.family == "ice40" else "synth_ecp5") in synth
    assert "--report nextpnr.json" in script and "--timing-allow-fail" in script
    for option in build.ECP5_NEXTPNR_OPTIONS:
        assert (option in script) == (brd.family == "ecp5"), option
    if brd.family == "ice40":
        pins = (directory / "top.pcf").read_text()
        # UART rx/tx of the iCEBreaker's FTDI, four LEDs, the 30 MHz constraint.
        assert "set_io uart_0__rx__io 6" in pins and "set_io uart_0__tx__io 9" in pins
        assert pins.count("set_io led_") == 4
        assert "set_frequency clock 30.0" in pins
        assert "--up5k --package sg48" in script
    else:
        pins = (directory / "top.lpf").read_text()
        assert 'LOCATE COMP "uart_0__rx__io" SITE "M1"' in pins
        assert 'LOCATE COMP "uart_0__tx__io" SITE "L4"' in pins
        assert pins.count('LOCATE COMP "led_') == 4
        assert "FREQUENCY NET" in pins and "100000000" in pins.replace(".0", "")
        assert "--85k --package CABGA381 --speed 6" in script
    # The design carries the SoC: its core and the bridge are in the netlist.
    rtlil = (directory / "top.il").read_text()
    assert "bridge" in rtlil and "core" in rtlil
    assert "SB_SPRAM256KA" in rtlil if brd.spram else "SB_SPRAM256KA" not in rtlil


def test_array_probe_plan(tmp_path):
    """``--array 12x12`` on the ULX3S: the same board and constraints, the array alone in the
    SoC's place, every product in a MULT18X18D."""
    brd = array_probe(BOARDS["ulx3s"], 12, 12)
    assert brd.name == "ulx3s-array12x12" and brd.config.macs_per_cycle == 144
    directory = build.plan(brd, tmp_path)
    assert "FREQUENCY NET" in (directory / "top.lpf").read_text()
    rtlil = (directory / "top.il").read_text()
    assert rtlil.count("cell \\MULT18X18D") == 144
    assert "bridge" not in rtlil and "core" not in rtlil


def test_array_probe_keeps_the_array_busy():
    """The probe's shift register feeds activations and weight rows, results come out, and
    the LED they are folded into changes: no part of the array is idle, so none is optimised
    away."""
    probe = ArrayProbe(array_probe(BOARDS["icebreaker"], 4, 4).config)
    array = probe.array
    counts = {"acts": 0, "weights": 0, "results": 0}
    leds = set()

    async def bench(ctx):
        for _ in range(400):
            counts["acts"] += ctx.get(array.acts.valid & array.acts.ready)
            counts["weights"] += ctx.get(array.weights.valid & array.weights.ready)
            counts["results"] += ctx.get(array.results.valid & array.results.ready)
            leds.add(ctx.get(probe.status.irq))
            await ctx.tick()

    simulate(probe, bench)
    assert min(counts.values()) > 50, counts
    assert counts["acts"] - counts["results"] <= array.latency, counts
    assert leds == {0, 1}


@pytest.mark.parametrize("size, message", [
    ("12", "--array takes ROWSxCOLS, such as 12x12, not '12'"),
    ("0x4", "rows must be between 1 and 64, not 0"),
])
def test_bad_array_is_one_line(size, message, capsys):
    assert build.main(["--board", "ulx3s", "--array", size]) == 2
    assert capsys.readouterr().err == f"bitstream: error: {message}\n"


def _fake_outputs(directory, fmax, dsp_on_path):
    """What a finished build leaves, as far as :func:`build.report` reads it."""
    (directory / "synth_stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {
        "SB_LUT4": 3000, "SB_CARRY": 200, "SB_DFFE": 1500, "SB_MAC16": 8,
        "SB_RAM40_4K": 10, "SB_SPRAM256KA": 4}}}))
    (directory / "top.json").write_text(json.dumps({"modules": {"top": {"cells": {
        "mac_0": {"type": "SB_MAC16"}, "lut_9": {"type": "SB_LUT4"}}}}}))
    path = [{"from": {"cell": "lut_9"}, "to": {"cell": "mac_0" if dsp_on_path else "lut_9"}}]
    (directory / "nextpnr.json").write_text(json.dumps({
        "utilization": {"ICESTORM_LC": {"used": 3500, "available": 5280},
                        "ICESTORM_PLL": {"used": 1, "available": 1}},
        "fmax": {"clock": {"achieved": fmax, "constraint": 30.0}},
        "critical_paths": [{"path": path}]}))


def test_report_from_build_outputs(tmp_path):
    brd = BOARDS["icebreaker"]
    _fake_outputs(tmp_path, 34.5, dsp_on_path=True)
    rep = build.report(brd, tmp_path)
    assert rep["timing_met"] and rep["clocks"] == {"clock": {"fmax_mhz": 34.5,
                                                             "target_mhz": 30.0}}
    assert rep["resources"]["luts"] == 3000 and rep["resources"]["dsps"] == 8
    assert rep["macs_per_cycle"] == 16 and rep["peak_gmacs"] == 0.48
    assert rep["luts_per_mac"] == 187.5
    assert rep["critical_path"]["through_dsp"] == ["mac_0"]
    assert rep["placed"] == {"ICESTORM_LC": {"used": 3500, "available": 5280},
                             "ICESTORM_PLL": {"used": 1, "available": 1}}
    assert rep["energy"]["label"].startswith("estimate")
    assert rep["bitstream"] is None


def test_energy_estimate():
    brd = BOARDS["icebreaker"]
    got = estimate(brd, 30.0)
    model = MODELS["ice40"]
    watts = model.static_w + 30 * (model.per_mhz_w + 16 * model.per_mac_mhz_w)
    assert got["watts"] == round(watts, 5)
    assert got["gmacs_per_watt"] == round(0.48 / watts, 1)
    # The model reproduces the figure it was fitted to: MARLANN, 16 MACs at 25 MHz.
    assert 25 * (model.per_mhz_w + 16 * model.per_mac_mhz_w) + model.static_w == \
        pytest.approx(10.58e-3, rel=0.01)


def test_bad_board_is_one_line(capsys):
    assert build.main(["--board", "nexys"]) == 2
    err = capsys.readouterr().err
    assert err == "bitstream: error: unknown board 'nexys'; choose one of icebreaker, ulx3s\n"
    with pytest.raises(ValueError, match="unknown board 'nexys'"):
        board("nexys")


def test_missing_tool_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(build, "out_dir", lambda brd: tmp_path)
    monkeypatch.setenv("NEXTPNR_ICE40", "no-such-nextpnr")
    assert build.main(["--board", "icebreaker"]) == 2
    err = capsys.readouterr().err
    assert err == ("bitstream: error: NEXTPNR_ICE40 (no-such-nextpnr) is not on PATH; run "
                   "`make setup` (the YoWASP wheels) or set it in toolchain.env\n")


def test_failed_tool_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(build, "out_dir", lambda brd: tmp_path)
    monkeypatch.setenv("YOSYS", "false")
    # An earlier build's files, which would show stages this one never reaches.
    earlier = [tmp_path / name for name in ("top.json", "top.asc", "top.bin", "report.json")]
    for path in earlier:
        path.write_text("earlier")
    assert build.main(["--board", "icebreaker"]) == 2
    # The progress line, then the error in one line.
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("bitstream: error: the icebreaker build failed: ")
    assert not any(path.exists() for path in earlier)


def test_missed_timing_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(build, "out_dir", lambda brd: tmp_path)
    monkeypatch.setattr(build, "run", lambda brd, directory: _fake_outputs(
        directory, 24.2, dsp_on_path=False))
    assert build.main(["--board", "icebreaker"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == ("bitstream: error: icebreaker misses timing: clock "
                                    "reaches 24.2 MHz of 30.0 MHz")
    assert "fmax 24.2 MHz" in out
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["timing_met"] is False
    assert (tmp_path.parent / "resources.png").stat().st_size > 10_000


def test_failed_placement_still_reports_resources(monkeypatch, capsys, tmp_path):
    """A design that synthesizes but does not place (too big) reports Yosys's resources and
    the error, so the report shows by how much it misses."""
    def too_big(brd, directory):
        _fake_outputs(directory, 0.0, dsp_on_path=False)
        (directory / "nextpnr.json").unlink()
        raise build.BuildError("the icebreaker build failed: ERROR: Unable to place cell")

    monkeypatch.setattr(build, "out_dir", lambda brd: tmp_path)
    monkeypatch.setattr(build, "run", too_big)
    assert build.main(["--board", "icebreaker"]) == 2
    assert capsys.readouterr().err == ("bitstream: error: the icebreaker build failed: ERROR: "
                                       "Unable to place cell\n")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["error"].endswith("Unable to place cell")
    assert saved["resources"]["luts"] == 3000 and saved["utilization"]["luts"] > 0.5
    assert (saved["clocks"], saved["timing_met"], saved["bitstream"]) == ({}, False, None)
