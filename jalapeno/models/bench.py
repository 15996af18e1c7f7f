"""The model benchmark: what a token costs on the accelerator at several batch sizes.

For each batch size ``B``, ``B`` prompts (lines of the held-out text) are prefilled and then
decoded together for a number of steps; the decode steps' counters give the cycles per token
and the MAC utilization (MACs over cycles times the array's MACs per cycle). Prefill
utilization comes from one prompt of :data:`PREFILL` characters run as a single step. Cycles
are the hardware counter's on the ``rtl`` backend and the cost model's on ``golden``; the
report says which. Writes ``model.json`` and ``model.png`` (utilization against batch size).
"""

import json
import sys
import time

from jalapeno.runtime.session import Session

from .engine import Engine
from .generate import Batcher
from .quantize import DATA

__all__ = ["run_model_bench", "print_report", "PREFILL"]

#: Characters of the prompt whose prefill is measured.
PREFILL = 64
#: Characters of each decode prompt.
PROMPT = 16


def _prompts(count, length):
    lines = [line for line in (DATA / "heldout.txt").read_text().split("\n")
             if len(line.strip()) >= length]
    return [lines[i % len(lines)][:length] for i in range(count)]


def _figures(stats, tokens, peak, timed):
    cycles = stats.cycles if timed else stats.predicted
    return {"tokens": tokens, "cycles": cycles, "macs": stats.macs,
            "cycles_per_token": cycles / tokens,
            "mac_utilization": stats.macs / (cycles * peak),
            "predicted_cycles": stats.predicted,
            "instructions": stats.instructions,
            "sim_cycles_per_second": stats.cycles / stats.wall if timed and stats.wall else None}


def run_model_bench(device, qm, *, batches, out, tokens=8):
    """Run the benchmark on ``device`` and write ``out`` (JSON) and its ``.png``.

    Returns
    -------
    dict
        The report.
    """
    cfg = device.config
    peak = cfg.rows * cfg.cols
    timed = device.backend != "golden"
    report = {"preset": cfg.name, "backend": device.backend,
              "cycles": "measured (CYCLES counter)" if timed else "predicted (cost model)",
              "model": {"layers": qm.config.layers, "d_model": qm.config.d_model,
                        "d_ff": qm.config.d_ff, "context": qm.config.context},
              "decode": {}, "prefill": None}
    for batch in batches:
        began = time.perf_counter()
        session = Session(device)
        batcher = Batcher(Engine(qm, session, slots=batch), max_batch=batch)
        batcher.run(_prompts(batch, PROMPT), tokens + 1)
        decode = [s["stats"] for s in batcher.steps[1:]]
        total = decode[0]
        for s in decode[1:]:
            total = _add(total, s)
        figures = _figures(total, batch * len(decode), peak, timed)
        report["decode"][str(batch)] = figures
        print(f"batch {batch:>3}: {figures['cycles_per_token']:>10,.0f} cycles/token, "
              f"MAC utilization {figures['mac_utilization']:.4f} "
              f"({time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    session = Session(device)
    engine = Engine(qm, session, slots=1)
    prompt = _prompts(1, PREFILL)[0]
    Batcher(engine, max_batch=1).run([prompt], 1)
    report["prefill"] = _figures(session.stats, len(prompt), peak, timed)
    one, last = report["decode"][str(batches[0])], report["decode"][str(batches[-1])]
    report["utilization_gain"] = last["mac_utilization"] / one["mac_utilization"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    _plot(report, out.with_suffix(".png"))
    return report


def _add(a, b):
    a = a.copy()
    for name in ("programs", "instructions", "macs", "cycles", "predicted", "wall"):
        setattr(a, name, getattr(a, name) + getattr(b, name))
    return a


def print_report(report):
    """The report as a table on stdout."""
    print(f"model bench, preset {report['preset']} on {report['backend']}, cycles "
          f"{report['cycles']}")
    print("| batch | cycles/token | MAC utilization | predicted/measured |")
    print("| --- | --- | --- | --- |")
    for batch, f in report["decode"].items():
        print(f"| {batch} | {f['cycles_per_token']:,.0f} | {f['mac_utilization']:.4f} | "
              f"{f['predicted_cycles'] / f['cycles']:.3f} |")
    p = report["prefill"]
    print(f"prefill of {p['tokens']} tokens: {p['cycles_per_token']:,.0f} cycles/token, MAC "
          f"utilization {p['mac_utilization']:.4f}")
    print(f"utilization at the largest batch / batch 1: {report['utilization_gain']:.2f}")


def _plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = [int(b) for b in report["decode"]]
    util = [f["mac_utilization"] for f in report["decode"].values()]
    cpt = [f["cycles_per_token"] for f in report["decode"].values()]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(batches, util, "o-", color="tab:red", label="MAC utilization")
    left.set_xscale("log", base=2)
    left.set_xlabel("batch (sequences decoded together)")
    left.set_ylabel("MAC utilization", color="tab:red")
    right = left.twinx()
    right.plot(batches, cpt, "s--", color="tab:blue", label="cycles per token")
    right.set_ylabel("cycles per token", color="tab:blue")
    left.set_title(f"decode on preset {report['preset']} ({report['backend']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
