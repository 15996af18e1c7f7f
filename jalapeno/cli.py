"""The ``jalapeno`` command: code completion, program runs and the model benchmark.

::

    jalapeno complete "def fib(n):" [--backend golden|rtl] [--tokens N] [--batch] [--check]
    jalapeno run program.s [--load FILE@ADDR ...] [--dump ADDR:LENGTH] [--backend ...]
    jalapeno bench [--backend rtl] [--batches 1,4,16] [--out build/bench/model.json]

Every mistake of the caller (an unknown backend or preset, a missing or corrupt weight or
program file, a prompt the model cannot take) is one line on stderr and exit status 2; a
program that stops with an error code is one line and status 1.
"""

import argparse
import sys
import time
from pathlib import Path

from jalapeno.asm import assemble, from_bytes
from jalapeno.runtime import BACKENDS, open_device
from jalapeno.runtime.session import ProgramError, Session
from rtl.config import PRESETS

__all__ = ["main", "FMAX_MHZ", "Failure"]

#: Clock each preset is projected at until its FPGA build reports a met one: the targets of
#: the FPGA prototype (iCE40UP5K for ``tiny``, ECP5-85F for the others).
FMAX_MHZ = {"tiny": 30.0, "default": 100.0, "large": 100.0}


class Failure(Exception):
    """A one-line error for the user; ``status`` is the exit status."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def _progress(label):
    """A progress callback writing ``label done/total`` over one line of stderr."""
    start = time.perf_counter()

    def report(done, total):
        end = "\n" if done == total else ""
        print(f"\r{label} {done}/{total} ({time.perf_counter() - start:.0f} s)", end=end,
              file=sys.stderr, flush=True)
    return report


def _device(args):
    if args.backend not in BACKENDS:
        raise Failure(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    if args.preset not in PRESETS:
        raise Failure(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    if args.backend == "rtl":
        print(f"rtl: starting the {args.preset} core on Verilator (the first build takes a few "
              f"minutes)", file=sys.stderr, flush=True)
    return open_device(args.backend, preset=args.preset)


def _model(path):
    from jalapeno.models.quantize import load_quant
    try:
        return load_quant(path)
    except (FileNotFoundError, ValueError) as exc:
        raise Failure(str(exc)) from None


def _complete(session, qm, prompts, tokens, batch, label):
    from jalapeno.models.engine import Engine
    from jalapeno.models.generate import Batcher
    engine = Engine(qm, session, slots=max(batch, 1))
    batcher = Batcher(engine, max_batch=batch)
    start = time.perf_counter()
    try:
        results = batcher.run(prompts, tokens, progress=_progress(label))
    except ValueError as exc:
        raise Failure(str(exc)) from None
    return results, batcher, time.perf_counter() - start


def _summary(stats, tokens, config, wall):
    """Lines of figures for ``tokens`` generated with ``stats``."""
    lines = []
    cycles = stats.cycles or stats.predicted
    kind = "measured" if stats.cycles else "predicted by the cost model"
    peak = config.rows * config.cols
    lines.append(f"cycles    {cycles:,} ({kind}), {cycles / tokens:,.0f} per token, "
                 f"{stats.programs} programs, {stats.instructions:,} instructions")
    lines.append(f"MACs      {stats.macs:,}: utilization {stats.macs / (cycles * peak):.3f} "
                 f"of the {config.rows}x{config.cols} array")
    if stats.cycles:
        lines.append(f"sim speed {stats.cycles / stats.wall:,.0f} simulated cycles/s")
    fmax = FMAX_MHZ.get(config.name, FMAX_MHZ["default"])
    lines.append(f"projected {fmax * 1e6 / (cycles / tokens):,.0f} tokens/s at "
                 f"{fmax:.0f} MHz (the FPGA target clock of preset {config.name})")
    lines.append(f"wall      {wall:.1f} s")
    return lines


def cmd_complete(args):
    qm = _model(args.weights)
    prompts = args.prompt
    batch = len(prompts) if args.batch else 1
    with _device(args) as device:
        session = Session(device)
        results, _, wall = _complete(session, qm, prompts, args.tokens, batch,
                                     f"{args.backend}: tokens")
        for r in results:
            print(f"prompt    {r.prompt!r}")
            print(f"complete  {r.text!r}")
        produced = sum(len(r.tokens) for r in results)
        for line in _summary(session.stats, produced, device.config, wall):
            print(line)
    if args.check:
        with open_device("golden", preset=args.preset) as golden:
            again, _, _ = _complete(Session(golden), qm, prompts, args.tokens, batch,
                                    "golden: tokens")
        same = all(a.tokens == b.tokens for a, b in zip(results, again, strict=True))
        print(f"check     {args.backend} tokens {'identical to' if same else 'DIFFER from'} "
              f"the golden backend's")
        if not same:
            raise Failure("the tokens differ from the golden backend's", status=1)


def _parse_at(text, what):
    try:
        left, _, right = text.rpartition("@" if what == "load" else ":")
        return left, int(right, 0)
    except ValueError:
        raise Failure(f"--{what} takes {'FILE@ADDR' if what == 'load' else 'ADDR:LENGTH'}, "
                      f"not {text!r}") from None


def cmd_run(args):
    path = Path(args.program)
    if not path.is_file():
        raise Failure(f"program file {path} does not exist")
    try:
        words = from_bytes(path.read_bytes()) if path.suffix == ".bin" else \
            assemble(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Failure(f"program file {path} is not a program: {exc}") from None
    loads = [_parse_at(item, "load") for item in args.load]
    with _device(args) as device:
        for file, addr in loads:
            if not Path(file).is_file():
                raise Failure(f"data file {file} does not exist")
            device.write(addr, Path(file).read_bytes())
        device.load_program(args.base, words)
        result = device.run(args.base, len(words))
        print(f"stopped   {result.code.name} at {result.addr:#x}")
        for name, value in result.counters.items():
            print(f"{name:<16}{value:,}")
        if result.cycles is not None:
            print(f"{'CYCLES':<16}{result.cycles:,}")
        for item in args.dump:
            addr_text, length = _parse_at(item, "dump")
            addr = int(addr_text, 0)
            print(f"{addr:#x}: {device.read(addr, length).tobytes().hex()}")
    if result.code.name != "NONE":
        raise Failure(f"the program stopped with {result.code.name} at {result.addr:#x}", 1)


def cmd_bench(args):
    from jalapeno.models.bench import print_report, run_model_bench
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        raise Failure(f"--batches takes sizes like 1,4,16, not {args.batches!r}") from None
    qm = _model(args.weights)
    with _device(args) as device:
        print_report(run_model_bench(device, qm, batches=batches, out=Path(args.out),
                                     tokens=args.tokens))


def _parser():
    from jalapeno.models.quantize import INT8_FILE
    parser = argparse.ArgumentParser(prog="jalapeno", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def device_options(p, backend="golden"):
        p.add_argument("--backend", default=backend, help=f"one of {', '.join(BACKENDS)}")
        p.add_argument("--preset", default="default", help=f"one of {', '.join(PRESETS)}")

    p = sub.add_parser("complete", help="complete code prompts with the int8 model")
    p.add_argument("prompt", nargs="+")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--batch", action="store_true", help="decode the prompts together")
    p.add_argument("--check", action="store_true",
                   help="also run the golden backend and compare the tokens")
    p.add_argument("--weights", default=str(INT8_FILE))
    device_options(p)
    p.set_defaults(run=cmd_complete)

    p = sub.add_parser("run", help="run a program (assembly, or .bin words)")
    p.add_argument("program")
    p.add_argument("--base", type=lambda s: int(s, 0), default=0x1000)
    p.add_argument("--load", action="append", default=[], help="FILE@ADDR, before the run")
    p.add_argument("--dump", action="append", default=[], help="ADDR:LENGTH, after the run")
    device_options(p)
    p.set_defaults(run=cmd_run)

    p = sub.add_parser("bench", help="cycles per token at several batch sizes")
    p.add_argument("--batches", default="1,4,16")
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--out", default="build/bench/model.json")
    p.add_argument("--weights", default=str(INT8_FILE))
    device_options(p, backend="rtl")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except Failure as exc:
        print(f"jalapeno: error: {exc}", file=sys.stderr)
        sys.exit(exc.status)
    except ProgramError as exc:
        print(f"jalapeno: error: {exc}", file=sys.stderr)
        sys.exit(1)
    return 0


if __name__ == "__main__":
    main()
