"""``make bench``: performance of the RTL, measured in simulation, as tables, JSON and plots.

For every preset, the ``matrix_unit`` bench runs M = 256 over 16 consecutive full weight
tiles with no stalls (the acceptance figure) and a sweep of M, collected into
``build/bench/matrix_unit.json`` and ``.png``; the ``vector_unit`` bench streams 4,096
elements through each elementwise operation and rows of 64, 256 and 1,024 elements through
softmax and layernorm, collected into ``build/bench/vector_unit.json`` and ``.png``; the ``dma``
bench moves 64 KiB contiguous reads, writes and both at once at 0 and 20 cycles of read
latency, collected into ``build/bench/dma.json`` and ``.png`` (fraction of one beat per cycle);
the ``core`` bench runs the double-buffered 256 x 256 x 256 GEMM of
:func:`verification.programs.tiled_gemm` on the core with its RTL memory (20 cycles of read
latency) on Verilator, and a smaller GEMM on Icarus for its simulation speed, collected into
``build/bench/core.json`` and ``.png`` (MAC utilization from the hardware counters, and
simulated cycles per wall second); the ``model`` bench decodes the int8 code-completion model
at batch 1, 4 and 16 on the default preset's RTL (:mod:`jalapeno.models.bench`), collected
into ``build/bench/model.json`` and ``.png``.
"""

import argparse
import json
import shutil

from rtl.config import PRESETS

from .runner import SIMULATORS, run_bench
from .toolchain import BUILD

__all__ = ["main"]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _plot_matrix_unit(reports, path):
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, report in reports.items():
        sweep = report["sweep"]
        ax.plot([p["m"] for p in sweep], [p["utilization"] for p in sweep], marker="o",
                label=f"{name} ({report['rows']}x{report['cols']})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("M (activation rows per weight tile)")
    ax.set_ylabel("MAC utilization")
    ax.set_ylim(0, 1.02)
    ax.set_title("Matrix unit: utilization over 16 back-to-back tiles")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_vector_unit(reports, path):
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, op in zip(axes, ("softmax", "layernorm"), strict=True):
        for name, report in reports.items():
            points = report["rows"][op]
            ax.plot([p["length"] for p in points], [p["cycles_per_row"] for p in points],
                    marker="o", label=f"{name} ({report['cols']} lanes)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("row length (elements)")
        ax.set_ylabel("cycles per row")
        ax.set_title(f"{op}: cycles per row, rows back to back")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _dma_label(point):
    return f"{point['case']}, {point['latency']}"


def _plot_dma(reports, path):
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    labels = [_dma_label(p) for p in next(iter(reports.values()))["cases"]]
    width = 0.8 / len(reports)
    for k, (name, report) in enumerate(reports.items()):
        ax.bar([i + (k - (len(reports) - 1) / 2) * width for i in range(len(labels))],
               [p["fraction_of_peak"] for p in report["cases"]], width,
               label=f"{name} ({report['bus_width']}-bit)")
    ax.axhline(next(iter(reports.values()))["target"], color="grey", linestyle="--",
               linewidth=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("transfer, read latency (cycles)")
    ax.set_ylabel("fraction of one beat per cycle")
    ax.set_ylim(0.8, 1.01)
    ax.set_title("DMA: 64 KiB contiguous transfers, no stalls")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(reports))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _dma(presets, sim, out_dir):
    reports = {}
    for name in presets:
        print(f"bench  dma {name} on {sim} ...", flush=True)
        run = run_bench("dma", preset=name, sim=sim, quiet=True, test_filter="run_bench_")
        reports[name] = json.loads((run.out_dir / "throughput.json").read_text())
    (out_dir / "dma.json").write_text(json.dumps({"simulator": sim, "presets": reports},
                                                 indent=2))
    _plot_dma(reports, out_dir / "dma.png")
    return reports


def _print_dma(reports):
    print()
    print("DMA, 64 KiB contiguous, no stalls: bytes per cycle / bus bytes (per direction for "
          "both at once; cycles from offering the descriptor to taking its done)")
    labels = [_dma_label(p) for p in next(iter(reports.values()))["cases"]]
    print(f"{'preset':<8} {'bus':>4} " + " ".join(f"{label:>10}" for label in labels))
    for name, r in reports.items():
        print(f"{name:<8} {r['bus_width']:>4} "
              + " ".join(f"{p['fraction_of_peak']:>10.4f}" for p in r["cases"]))
    print()
    print(f"{'preset':<8} {'case':<6} {'latency':>7} {'load cycles':>11} {'store cycles':>12}")
    for name, r in reports.items():
        for p in r["cases"]:
            load, store = (str(p[k]["cycles"]) if k in p else "-" for k in ("load", "store"))
            print(f"{name:<8} {p['case']:<6} {p['latency']:>7} {load:>11} {store:>12}")


def _matrix_unit(presets, sim, out_dir):
    reports = {}
    for name in presets:
        print(f"bench  matrix_unit {name} on {sim} ...", flush=True)
        run = run_bench("matrix_unit", preset=name, sim=sim, quiet=True, test_filter="run_bench_")
        report = json.loads((run.out_dir / "utilization.json").read_text())
        report["sweep"] = json.loads((run.out_dir / "sweep.json").read_text())
        reports[name] = report
    (out_dir / "matrix_unit.json").write_text(json.dumps(
        {"simulator": sim, "presets": reports}, indent=2))
    _plot_matrix_unit(reports, out_dir / "matrix_unit.png")
    return reports


def _vector_unit(presets, sim, out_dir):
    reports = {}
    for name in presets:
        print(f"bench  vector_unit {name} on {sim} ...", flush=True)
        run = run_bench("vector_unit", preset=name, sim=sim, quiet=True, test_filter="run_bench_")
        reports[name] = json.loads((run.out_dir / "throughput.json").read_text())
    (out_dir / "vector_unit.json").write_text(json.dumps(
        {"simulator": sim, "presets": reports}, indent=2))
    _plot_vector_unit(reports, out_dir / "vector_unit.png")
    return reports


def _print_matrix_unit(reports):
    print()
    print("matrix unit, M = 256 over 16 full weight tiles, no stalls")
    print(f"{'preset':<8} {'array':>6} {'MACs':>9} {'cycles':>7} {'utilization':>12}")
    for name, r in reports.items():
        print(f"{name:<8} {r['rows']:>2}x{r['cols']:<3} {r['macs']:>9} {r['cycles']:>7} "
              f"{r['utilization']:>12.4f}")
    print()
    print("utilization vs M (16 full tiles each)")
    ms = [p["m"] for p in next(iter(reports.values()))["sweep"]]
    print(f"{'preset':<8} " + " ".join(f"{m:>6}" for m in ms))
    for name, r in reports.items():
        print(f"{name:<8} " + " ".join(f"{p['utilization']:>6.3f}" for p in r["sweep"]))


def _print_vector_unit(reports):
    print()
    print("vector unit, 4,096-element streams, no stalls: elements per cycle / lanes")
    ops = list(next(iter(reports.values()))["stream"])
    print(f"{'preset':<8} {'lanes':>5} " + " ".join(f"{op:>11}" for op in ops))
    for name, r in reports.items():
        print(f"{name:<8} {r['cols']:>5} "
              + " ".join(f"{r['stream'][op]['fraction_of_cols']:>11.4f}" for op in ops))
    print()
    print("row operations in steady state ((5 rows - 1 row) / 4): cycles per row = "
          "passes x ceil(N / lanes) + constant")
    print(f"{'preset':<8} {'op':<10} {'N':>5} {'cycles/row':>11} {'passes':>7} "
          f"{'pass':>5} {'constant':>9}")
    for name, r in reports.items():
        for op, points in r["rows"].items():
            for p in points:
                print(f"{name:<8} {op:<10} {p['length']:>5} {p['cycles_per_row']:>11.1f} "
                      f"{p['passes']:>7} {p['pass_cycles']:>5} {p['constant_per_row']:>9.1f}")


#: The GEMM the ``core`` bench times on Icarus, which runs the core about a thousand times
#: slower than Verilator: the 256 x 256 x 256 one would take hours.
_CORE_ICARUS_GEMM = (64, 64, 64)


def _core_run(name, sim, gemm=None):
    env = {"JALAPENO_GEMM": "x".join(map(str, gemm))} if gemm else None
    run = run_bench("core", preset=name, sim=sim, quiet=True, test_filter="run_bench_",
                    env=env)
    return json.loads((run.out_dir / "core.json").read_text())


def _core(presets, sim, out_dir):
    """The 256 x 256 x 256 GEMM on Verilator on every preset (the utilization figures are
    cycle counts of the RTL, the same on every simulator), and the smaller
    :data:`_CORE_ICARUS_GEMM` on Icarus for its speed (``sim`` is not used)."""
    reports = {}
    for name in presets:
        print(f"bench  core {name} on verilator ...", flush=True)
        reports[name] = _core_run(name, "verilator")
    icarus = {"gemm": list(_CORE_ICARUS_GEMM), "presets": {},
              "note": "Icarus runs a smaller GEMM than Verilator: simulation speed only"}
    if shutil.which("iverilog") is None:
        icarus["note"] = "iverilog is not installed: not measured"
    else:
        for name in presets:
            print(f"bench  core {name} on icarus ({'x'.join(map(str, _CORE_ICARUS_GEMM))}) ...",
                  flush=True)
            icarus["presets"][name] = _core_run(name, "icarus", _CORE_ICARUS_GEMM)
    first = next(iter(reports.values()))
    result = {"simulator": "verilator", "gemm": [first["m"], first["k"], first["n"]],
              "read_latency": first["read_latency"], "target": first["target"],
              "presets": reports, "icarus": icarus}
    (out_dir / "core.json").write_text(json.dumps(result, indent=2))
    _plot_core(result, out_dir / "core.png")
    return result


def _plot_core(result, path):
    plt = _figure()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    reports = result["presets"]
    names = list(reports)
    left.bar(names, [r["utilization"] for r in reports.values()], label="measured")
    left.scatter(names, [r["accumulator_bound"] for r in reports.values()], color="black",
                 marker="_", s=600, label="accumulator bound", zorder=3)
    left.axhline(result["target"], color="grey", linestyle="--", linewidth=1,
                 label=f"target {result['target']}")
    left.set_ylim(0, 1.02)
    left.set_ylabel("MAC utilization")
    left.set_title(f"Core, GEMM {'x'.join(map(str, result['gemm']))}, read latency "
                   f"{result['read_latency']}")
    left.legend(loc="lower left")
    left.grid(True, axis="y", alpha=0.3)
    icarus = result["icarus"]["presets"]
    width = 0.4
    right.bar([i - width / 2 for i in range(len(names))],
              [r["sim_cycles_per_second"] for r in reports.values()], width, label="Verilator")
    right.bar([i + width / 2 for i in range(len(names))],
              [icarus[n]["sim_cycles_per_second"] if n in icarus else 0 for n in names], width,
              label=f"Icarus ({'x'.join(map(str, result['icarus']['gemm']))})")
    right.set_xticks(range(len(names)), names)
    right.set_yscale("log")
    right.set_ylabel("simulated cycles per second")
    right.set_title("Simulation speed (the host awaits only the interrupt)")
    right.legend()
    right.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_core(result):
    print()
    print(f"core, tiled GEMM {'x'.join(map(str, result['gemm']))}, memory read latency "
          f"{result['read_latency']}, Verilator: utilization = MACS / (CYCLES * rows * cols) "
          f"(target {result['target']} on default); the bound is what the accumulator's one "
          "port allows (a row update or a STORE read per cycle)")
    print(f"{'preset':<8} {'array':>6} {'plan':>11} {'cycles':>9} {'MACs':>10} "
          f"{'utilization':>11} {'bound':>7} {'cycles/s':>10}")
    for name, r in result["presets"].items():
        plan = "{m_block}/{n_group}/{k_step}".format(**r["plan"])
        print(f"{name:<8} {r['rows']:>2}x{r['cols']:<3} {plan:>11} {r['cycles']:>9} "
              f"{r['macs']:>10} {r['utilization']:>11.4f} {r['accumulator_bound']:>7.4f} "
              f"{r['sim_cycles_per_second']:>10,.0f}")
    print()
    print("queue cycles (the RTL's BUSY counts the STALL cycles too), bytes moved")
    print(f"{'preset':<8} " + " ".join(f"{q:>13}" for q in ("load busy", "load stall",
          "compute busy", "compute stall", "store busy", "store stall", "read bytes",
          "write bytes")))
    for name, r in result["presets"].items():
        c = r["counters"]
        print(f"{name:<8} " + " ".join(f"{c[k]:>13}" for k in (
            "LOAD_BUSY", "LOAD_STALL", "COMPUTE_BUSY", "COMPUTE_STALL", "STORE_BUSY",
            "STORE_STALL", "DMA_READ_BYTES", "DMA_WRITE_BYTES")))
    icarus = result["icarus"]
    print()
    print(f"Icarus, GEMM {'x'.join(map(str, icarus['gemm']))}: {icarus['note']}")
    for name, r in icarus["presets"].items():
        print(f"{name:<8} {r['cycles']:>9} cycles {r['sim_cycles_per_second']:>10,.0f} "
              f"simulated cycles/s (utilization {r['utilization']:.4f})")


def _model(presets, sim, out_dir):
    """The code-completion model on the default preset's RTL (``jalapeno bench``)."""
    from jalapeno.models.bench import run_model_bench
    from jalapeno.models.quantize import INT8_FILE, load_quant
    from jalapeno.runtime import open_device

    print("bench  model default on verilator ...", flush=True)
    with open_device("rtl", preset="default", sim=sim) as device:
        return run_model_bench(device, load_quant(INT8_FILE), batches=[1, 4, 16],
                               out=out_dir / "model.json")


def _print_model(report):
    from jalapeno.models.bench import print_report

    print_report(report)


#: Benches ``make bench`` runs: how to collect each and how to print it.
_BENCHES = {
    "matrix_unit": (_matrix_unit, _print_matrix_unit),
    "vector_unit": (_vector_unit, _print_vector_unit),
    "dma": (_dma, _print_dma),
    "core": (_core, _print_core),
    "model": (_model, _print_model),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark the RTL in simulation.")
    parser.add_argument("--preset", choices=list(PRESETS), action="append",
                        help="preset to measure (default: all)")
    parser.add_argument("--bench", choices=list(_BENCHES), action="append",
                        help="bench to run (default: all)")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator")
    args = parser.parse_args(argv)

    out_dir = BUILD / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {bench: _BENCHES[bench][0](args.preset or list(PRESETS), args.sim, out_dir)
               for bench in args.bench or _BENCHES}
    for bench, reports in results.items():
        _BENCHES[bench][1](reports)
    print()
    for bench in results:
        print(f"wrote {(out_dir / f'{bench}.json').relative_to(BUILD.parent)} and "
              f"{(out_dir / f'{bench}.png').relative_to(BUILD.parent)}")


if __name__ == "__main__":
    main()
