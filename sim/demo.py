"""``make demo``: a random GEMM through the RTL matrix unit, checked against NumPy.

Runs the ``matrix_unit_demo`` cocotb bench on Verilator and prints what it measured: whether
every result equals NumPy's, the cycles the unit took and its MAC utilization.
"""

import argparse
import json
import sys
import time

from rtl.config import PRESETS

from .runner import SIMULATORS, run_bench


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run a random GEMM on the RTL matrix unit.")
    parser.add_argument("--preset", choices=list(PRESETS), default="default")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    print(f"building and simulating the {args.preset} matrix unit on {args.sim} "
          "(the first build takes a minute)...", flush=True)
    start = time.perf_counter()
    run = run_bench("matrix_unit_demo", preset=args.preset, sim=args.sim, quiet=True,
                    env={"JALAPENO_SEED": str(args.seed)}, check=False)
    report = run.out_dir / "demo.json"
    if not report.exists():
        sys.exit(f"error: the demo bench wrote no report; see {run.out_dir / 'sim.log'}")
    out = json.loads(report.read_text())
    print(f"GEMM      {out['m']} x {out['k']} x {out['n']} int8 -> int32, seed {out['seed']}, "
          f"{out['tiles']} tiles on a {out['rows']}x{out['cols']} array")
    print(f"cycles    {out['cycles']} for {out['macs']} MACs")
    print(f"sim speed {out['sim_cycles_per_second']:,.0f} cycles/s "
          f"(total {time.perf_counter() - start:.0f} s)")
    verdict = "bit-exact" if out["mismatches"] == 0 else f"{out['mismatches']} MISMATCHES"
    print(f"check     RTL vs NumPy: {verdict}")
    print(f"utilization {out['utilization']:.3f}")
    if run.failed:
        sys.exit(f"error: the demo failed; see {run.out_dir / 'sim.log'}")


if __name__ == "__main__":
    main()
