"""``make bench``: performance of the RTL, measured in simulation, as tables, JSON and plots.

For every preset the ``matrix_unit`` bench runs M = 256 over 16 consecutive full weight
tiles with no stalls (the acceptance figure) and a sweep of M, and this script collects the
cycle counts into ``build/bench/matrix_unit.json`` and ``build/bench/matrix_unit.png``.
"""

import argparse
import json

from rtl.config import PRESETS

from .runner import SIMULATORS, run_bench
from .toolchain import BUILD

__all__ = ["main"]


def _plot(reports, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark the RTL in simulation.")
    parser.add_argument("--preset", choices=list(PRESETS), action="append",
                        help="preset to measure (default: all)")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator")
    args = parser.parse_args(argv)

    reports = {}
    for name in args.preset or PRESETS:
        print(f"bench  matrix_unit {name} on {args.sim} ...", flush=True)
        run = run_bench("matrix_unit", preset=name, sim=args.sim, quiet=True,
                        test_filter="run_bench_")
        report = json.loads((run.out_dir / "utilization.json").read_text())
        report["sweep"] = json.loads((run.out_dir / "sweep.json").read_text())
        reports[name] = report

    out_dir = BUILD / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matrix_unit.json").write_text(json.dumps(
        {"simulator": args.sim, "presets": reports}, indent=2))
    _plot(reports, out_dir / "matrix_unit.png")

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
    print()
    print(f"wrote {(out_dir / 'matrix_unit.json').relative_to(BUILD.parent)} and "
          f"{(out_dir / 'matrix_unit.png').relative_to(BUILD.parent)}")


if __name__ == "__main__":
    main()
