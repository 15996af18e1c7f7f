"""Build a board's bitstream with the open toolchain and write its report:
``python -m fpga.build --board icebreaker|ulx3s [--array ROWSxCOLS]`` (``make bitstream
BOARD=... [ARRAY=...]``).

The board's platform (amaranth-boards) writes the build plan under ``build/fpga/<board>/``:
the design as RTLIL, the Yosys script (``synth_ice40 -dsp`` or ``synth_ecp5``, then ``stat
-json`` into ``synth_stat.json``), the pin constraints, the clock constraint of the target
clock, and the script that runs Yosys, nextpnr (``--report nextpnr.json``) and the packer.
The run shows its stage and time as it goes; afterwards ``report.json`` holds:

* ``resources``: LUTs, carries, FFs, DSPs, RAMs, SPRAMs from Yosys (as ``make synth``
  counts them), and nextpnr's placed cells against the device's sites;
* ``clocks``: per clock, ``fmax_mhz`` as nextpnr reports it and the target;
* ``critical_path``: the worst path's cells, and whether it passes through a DSP (nextpnr
  models none of the iCE40 SB_MAC16's internal delay, so such a path's fmax is optimistic);
* ``macs_per_cycle``, ``peak_gmacs`` (at the target clock, met), ``luts_per_mac``;
* ``energy``: the estimate of :mod:`fpga.energy`, labelled as one;
* ``timing_met`` and ``bitstream``.

``build/fpga/resources.png`` then charts every board's last report: utilization per
resource, and the clock reached against the target.

``--array ROWSxCOLS`` (``make bitstream BOARD=ulx3s ARRAY=12x12``) builds the board with that
systolic array alone in the SoC's place (:mod:`fpga.probe`), into
``build/fpga/<board>-array<ROWS>x<COLS>/``, with the same report: the clock the array's
datapath reaches by itself, for choosing the array size by routed GMAC/s.

A bad board name, a missing tool, a build that fails or does not meet the target clock is
one line on stderr and exit status 2 (1 for timing). The report is still written when
synthesis finished: a failed build's has Yosys's resources and its ``error``, so a design
that does not fit still shows by how much.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from amaranth.build.plat import Platform
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from sim.toolchain import BUILD, toolchain_env

from .boards import BOARDS, Board, BoardTop, array_probe, board
from .energy import estimate
from .synth import FAMILIES, _shown, stat_fields

__all__ = ["TOOLS", "ECP5_NEXTPNR_OPTIONS", "BuildError", "plan", "run", "report",
           "format_report", "plot", "main"]

#: Environment variables naming each family's tools (``toolchain.env``), in build order.
TOOLS = {"ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
         "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK")}
#: Files of a finished stage, by family: what the progress line reports.
_STAGES = {"ice40": (("top.json", "placing and routing"), ("top.asc", "packing"),
                     ("top.bin", "done")),
           "ecp5": (("top.json", "placing and routing"), ("top.config", "packing"),
                    ("top.bit", "done"))}
_BITSTREAM = {"ice40": "top.bin", "ecp5": "top.bit"}


#: nextpnr options of the ECP5 builds: router2, which routes the congested core where router1
#: does not converge, and a placer that weighs timing five times its default (10) with
#: criticality to the fourth power (default: squared). On the same 64 KiB ULX3S netlist the
#: routed clock went from 48.3 MHz to 57.1 (55.6 with seed 2); a weight of 100 gave 53.9.
ECP5_NEXTPNR_OPTIONS = ("--router router2", "--placer-heap-timingweight 50",
                        "--placer-heap-critexp 4")


class BuildError(RuntimeError):
    """The build could not run or did not finish; the message is one line."""


def out_dir(brd: Board) -> Path:
    return BUILD / "fpga" / brd.name


def plan(brd: Board, directory: Path | None = None) -> Path:
    """Write the build plan of ``brd`` into ``directory`` (its build folder by default) and
    return that folder."""
    directory = directory or out_dir(brd)
    platform: Platform = brd.make_platform()
    synth_opts = "-dsp" if brd.family == "ice40" else ""
    options = ECP5_NEXTPNR_OPTIONS if brd.family == "ecp5" else ()
    build_plan = platform.build(
        BoardTop(brd), name="top", do_build=False, synth_opts=synth_opts,
        script_after_synth="tee -q -o synth_stat.json stat -json",
        nextpnr_opts=" ".join(["--report nextpnr.json --timing-allow-fail", *options]))
    build_plan.extract(str(directory))
    return directory


def _environment(family):
    """The build's environment: :func:`~sim.toolchain.toolchain_env` with the tool variables
    already set in ours winning (``make bitstream NEXTPNR_ICE40=...``).

    Raises
    ------
    BuildError
        Naming the first tool that is not on ``PATH``.
    """
    env = {**os.environ, **toolchain_env()}
    env.update({name: os.environ[name] for name in TOOLS[family] if os.environ.get(name)})
    for variable in TOOLS[family]:
        command = env.get(variable, "")
        if not command or shutil.which(command, path=env["PATH"]) is None:
            raise BuildError(f"{variable} ({command or 'unset'}) is not on PATH; run `make "
                             "setup` (the YoWASP wheels) or set it in toolchain.env")
    return env


def run(brd: Board, directory: Path, *, progress=True) -> None:
    """Run the build script in ``directory``, printing the stage and elapsed time.

    Raises
    ------
    BuildError
        If a tool is missing or the script fails (the message quotes the tools' first
        ``ERROR`` line, else their last line).
    """
    env = _environment(brd.family)
    # Every stage's file goes, or an earlier build's would show a stage not yet reached.
    for stale in ("nextpnr.json", "synth_stat.json", "report.json",
                  *(name for name, _ in _STAGES[brd.family])):
        (directory / stale).unlink(missing_ok=True)
    started = time.monotonic()
    done = threading.Event()

    def show():
        while not done.wait(5.0):
            stage = "synthesizing"
            for name, after in _STAGES[brd.family]:
                if (directory / name).exists():
                    stage = after
            print(f"\rbitstream {brd.name}: {stage} ({time.monotonic() - started:.0f} s)",
                  end="", file=sys.stderr, flush=True)

    watcher = threading.Thread(target=show, daemon=True)
    if progress:
        watcher.start()
    try:
        result = subprocess.run(["sh", "build_top.sh"], cwd=directory, env=env,
                                capture_output=True, text=True)
    finally:
        done.set()
        if progress:
            watcher.join()
            print(f"\rbitstream {brd.name}: finished in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
    if result.returncode:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()
                 if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        first = (errors or lines or [f"exit status {result.returncode}"])[0]
        raise BuildError(f"the {brd.name} build failed: {first} (logs in {_shown(directory)})")


def _dsp_cells(directory, family):
    """Names of the DSP cells in the synthesized netlist."""
    types = set(FAMILIES[family].cells["dsps"])
    netlist = json.loads((directory / "top.json").read_text())
    return {name for module in netlist["modules"].values()
            for name, cell in module.get("cells", {}).items() if cell["type"] in types}


def report(brd: Board, directory: Path, error: str | None = None) -> dict:
    """The report of a build in ``directory`` (see the module's description). A build that
    failed after synthesis (``error``, its message) still reports Yosys's resources; the
    fields nextpnr would give are empty."""
    family = FAMILIES[brd.family]
    stat = json.loads((directory / "synth_stat.json").read_text())
    resources = stat_fields(stat, family)
    placed = directory / "nextpnr.json"
    pnr = json.loads(placed.read_text()) if error is None else {}
    clocks = {name: {"fmax_mhz": round(clock["achieved"], 2),
                     "target_mhz": round(clock["constraint"], 2)}
              for name, clock in pnr.get("fmax", {}).items()}
    worst = min(clocks, key=lambda name: clocks[name]["fmax_mhz"] - clocks[name]["target_mhz"],
                default=None)
    met = bool(clocks) and all(c["fmax_mhz"] >= c["target_mhz"] for c in clocks.values())
    dsps = _dsp_cells(directory, brd.family) if pnr else set()
    path = pnr.get("critical_paths", [{}])[0].get("path", []) if pnr.get("critical_paths") \
        else []
    cells = [step[end]["cell"] for step in path for end in ("from", "to") if end in step]
    macs = brd.config.macs_per_cycle
    clock_mhz = brd.clock_hz / 1e6
    logic = resources["luts"] + family.carry_luts * resources["carries"]
    bitstream = directory / _BITSTREAM[brd.family]
    return {
        "board": brd.name, "device": family.device, "preset": brd.config.name,
        "array": f"{brd.config.rows}x{brd.config.cols}",
        "target_mhz": clock_mhz, "clocks": clocks, "worst_clock": worst, "timing_met": met,
        "resources": {name: resources[name] for name in
                      ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")},
        "utilization": resources["utilization"],
        "placed": {name: {"used": cell["used"], "available": cell["available"]}
                   for name, cell in pnr.get("utilization", {}).items() if cell["used"]},
        "critical_path": {"cells": len(set(cells)),
                          "through_dsp": sorted(set(cells) & dsps)},
        "macs_per_cycle": macs,
        "peak_gmacs": round(macs * clock_mhz / 1e3, 3),
        "luts_per_mac": round(logic / macs, 1),
        "energy": estimate(brd, clock_mhz),
        "bitstream": bitstream.name if bitstream.exists() else None,
        "error": error,
    }


def format_report(rep: dict) -> str:
    """A few lines for the terminal."""
    res = rep["resources"]
    lines = [f"{rep['board']} ({rep['device']}, {rep['preset']} {rep['array']}): "
             f"{res['luts']} LUTs, {res['carries']} carries, {res['ffs']} FFs, "
             f"{res['dsps']} DSPs, {res['rams']} RAMs, {res['spram']} SPRAMs"]
    for name, clock in rep["clocks"].items():
        lines.append(f"  clock {name}: fmax {clock['fmax_mhz']} MHz, target "
                     f"{clock['target_mhz']} MHz")
    energy = rep["energy"]
    lines.append(f"  {rep['macs_per_cycle']} MACs/cycle, peak {rep['peak_gmacs']} GMAC/s at "
                 f"{rep['target_mhz']:g} MHz, {rep['luts_per_mac']} LUTs/MAC; estimated "
                 f"{energy['watts'] * 1e3:.1f} mW, {energy['gmacs_per_watt']} GMAC/s/W "
                 "(estimate)")
    if rep["critical_path"]["through_dsp"]:
        lines.append(f"  critical path through DSP cells: "
                     f"{', '.join(rep['critical_path']['through_dsp'])}")
    return "\n".join(lines)


#: Resources of the board chart, in bar order.
_CHART = ("luts", "ffs", "dsps", "rams", "spram")


def plot(reports: list[dict], path: Path) -> None:
    """Write a bar chart (PNG) of each board's utilization of its device, one group of bars
    per board, titled with its clock against the target."""
    figure = Figure(figsize=(2 + 2.5 * len(reports), 4), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(_CHART)
    peak = 100
    for index, resource in enumerate(_CHART):
        values = [100 * rep["utilization"].get(resource, 0) for rep in reports]
        xs = [i + (index - (len(_CHART) - 1) / 2) * width for i in range(len(reports))]
        bars = ax.bar(xs, values, width, label=resource)
        ax.bar_label(bars, labels=[str(rep["resources"][resource]) for rep in reports],
                     fontsize=7, rotation=90, padding=2)
        peak = max(peak, *values)
    ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_ylim(1, 4 * peak)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}%"))

    def clock(rep):
        fmax = rep["clocks"].get(rep["worst_clock"], {}).get("fmax_mhz")
        return (f"fmax {fmax} of {rep['target_mhz']:g} MHz" if fmax is not None
                else f"no fmax ({rep['target_mhz']:g} MHz target)")

    ax.set_xticks(range(len(reports)),
                  [f"{rep['board']}: {rep['preset']} {rep['array']}\n{clock(rep)}"
                   for rep in reports], fontsize=8)
    ax.set_ylabel("utilization of the device")
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=120)


def _chart(root):
    """Redraw ``resources.png`` in ``root`` (``build/fpga``) from every board's last report
    in its folders."""
    reports = [json.loads(path.read_text()) for path in sorted(root.glob("*/report.json"))]
    plot(reports, root / "resources.png")


def _array_size(text: str) -> tuple[int, int]:
    """``(rows, cols)`` of ``--array``'s ``ROWSxCOLS``.

    Raises
    ------
    ValueError
        If ``text`` is not two decimal numbers joined by ``x``.
    """
    size = re.fullmatch(r"(\d+)x(\d+)", text)
    if size is None:
        raise ValueError(f"--array takes ROWSxCOLS, such as 12x12, not {text!r}")
    return int(size[1]), int(size[2])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpga.build",
                                     description="Build a board's bitstream and report.")
    parser.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    parser.add_argument("--array", metavar="ROWSxCOLS",
                        help="build that array alone on the board (fpga.probe), not the SoC")
    parser.add_argument("--plan-only", action="store_true",
                        help="write the build plan, run no tool")
    args = parser.parse_args(argv)
    try:
        brd = board(args.board)
        if args.array is not None:
            brd = array_probe(brd, *_array_size(args.array))
        directory = plan(brd)
        if args.plan_only:
            print(f"bitstream {brd.name}: plan in {_shown(directory)}")
            return 0
        try:
            run(brd, directory)
        except BuildError as error:
            if (directory / "synth_stat.json").exists():
                failed = report(brd, directory, str(error))
                (directory / "report.json").write_text(json.dumps(failed, indent=2) + "\n")
                _chart(directory.parent)
            raise
        rep = report(brd, directory)
    except (ValueError, BuildError) as error:
        print(f"bitstream: error: {error}", file=sys.stderr)
        return 2
    (directory / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    _chart(directory.parent)
    print(format_report(rep))
    if not rep["timing_met"]:
        clock = rep["clocks"][rep["worst_clock"]]
        print(f"bitstream: error: {brd.name} misses timing: {rep['worst_clock']} reaches "
              f"{clock['fmax_mhz']} MHz of {clock['target_mhz']} MHz", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
