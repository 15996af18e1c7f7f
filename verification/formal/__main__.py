"""Command line: ``python -m verification.formal [--proof NAME ...] [--list]``.

Runs the proofs one after the other with a progress line each, then prints a table (proof,
mode, depth, result, seconds) and, for each proof that did not pass, the properties that
failed and the counterexample traces. Exits with 1 if any proof did not pass.
"""

import argparse
import sys

from sim.toolchain import BUILD

from .flow import _shown, format_table, run_proof
from .proofs import PROOFS


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line, without the usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None, *, proofs=None, out_dir=BUILD / "formal"):
    """Run the proofs named in ``argv`` (all of ``proofs``, default :data:`PROOFS`, if none)."""
    proofs = PROOFS if proofs is None else proofs
    parser = _Parser(prog="python -m verification.formal",
                     description="Run the formal proofs with SymbiYosys.")
    parser.add_argument("--proof", choices=list(proofs), action="append", metavar="NAME",
                        help=f"proof to run (repeatable; default: all of {', '.join(proofs)})")
    parser.add_argument("--list", action="store_true", help="list the proofs and exit")
    args = parser.parse_args(argv)
    if args.list:
        for proof in proofs.values():
            print(f"{proof.name}  {proof.mode} depth {proof.depth}  {proof.description}")
        return
    results = []
    for name in args.proof or proofs:
        proof = proofs[name]
        print(f"formal {name}  {proof.mode} depth {proof.depth} ... ", end="", flush=True)
        result = run_proof(proof, out_dir=out_dir)
        print(f"{result.status} {result.seconds:.1f} s", flush=True)
        results.append(result)
    print()
    print(format_table(results))
    failed = [result for result in results if not result.passed]
    for result in failed:
        print(f"\n{result.proof.name}: {result.status}")
        for line in result.failures:
            print(f"  {line}")
        if result.status == "UNKNOWN":
            print(f"  k-induction did not close at depth {result.proof.depth}: the induction "
                  "step's trace starts from a state that may be unreachable")
        for trace in result.counterexamples:
            print(f"  counterexample: {_shown(trace)}")
        if result.proof.mode == "cover" and result.cover_traces:
            print(f"  covers reached: {', '.join(map(_shown, result.cover_traces))}")
        print(f"  log: {_shown(result.workdir / 'sby.log')}")
    print(f"\nfiles in {_shown(out_dir)}/")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
