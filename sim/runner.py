"""Build and run cocotb benches on Verilator (default) or Icarus, one build per parameter set.

Each (simulator, top, preset, waves) combination is built once under
``build/sim/<simulator>/<top>_<preset>[_waves]/`` and reused: the generated Verilog is only
rewritten when it changes, so a rerun does not recompile. Results of a bench run (JSON written
by the bench itself) go under ``build/sim/<simulator>/<top>_<preset>/<bench>/``.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .toolchain import BUILD, apply
from .verilog import DESIGN_POINTS, generate

__all__ = ["BENCHES", "SIMULATORS", "BenchFailure", "BenchBuild", "build_bench",
           "simulate_bench", "run_bench"]

#: cocotb benches by name: the top they simulate and the test module that drives it.
BENCHES = {
    "matrix_unit": ("matrix_unit", "verification.tb.test_matrix_unit"),
    "matrix_unit_demo": ("matrix_unit", "verification.tb.demo_matrix_unit"),
    "vector_unit": ("vector_unit", "verification.tb.test_vector_unit"),
    "axi_ram": ("axi_copy", "verification.tb.test_axi_ram"),
    "dma": ("dma_system", "verification.tb.test_dma"),
    "core": ("core_system", "verification.tb.test_core"),
    "core_model_ram": ("core", "verification.tb.test_core_model_ram"),
    "board": ("board", "verification.tb.test_board"),
    # Not a bench: the rtl runtime backend's server (jalapeno.runtime.rtl).
    "device": ("core_system", "verification.tb.device_server"),
}

SIMULATORS = ("verilator", "icarus")

# Amaranth's Verilog is lint-clean for simulation purposes; width warnings come from its
# generic constructs, not from the design.
_VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                   "--x-initial", "fast"]

#: Tops whose benches reach only the top's ports and these ``(module, variable)`` pairs. The
#: cocotb runner builds Verilator models with ``--public-flat-rw``, which makes every signal
#: visible and so keeps Verilator from optimizing any away (the core runs five times slower);
#: for these tops it is turned off again and a configuration file makes just those public.
_PUBLIC_ONLY = {
    "core_system": (("jalapeno_ram_storage", "memory"),),
    "core": (),
    "board": (),
}


def _public_config(top, build_dir):
    """Verilator arguments that make only the ports of ``top`` and its :data:`_PUBLIC_ONLY`
    variables visible to cocotb (none for other tops)."""
    if top not in _PUBLIC_ONLY:
        return []
    lines = ["`verilator_config", f'public_flat_rw -module "{top}" -var "*"']
    lines += [f'public_flat_rw -module "{module}" -var "{var}"'
              for module, var in _PUBLIC_ONLY[top]]
    path = build_dir / "public.vlt"
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return ["--no-public-flat-rw", str(path)]


class BenchFailure(AssertionError):
    """A cocotb bench ran and some of its tests failed."""


@dataclass(frozen=True)
class BenchRun:
    """Where a bench run left its outputs."""

    results_xml: Path
    out_dir: Path
    tests: int
    failed: int

    @property
    def traces(self):
        """Waveform files of the run (Verilator writes into the run's folder, Icarus into
        the build folder above it)."""
        return sorted(p for folder in (self.out_dir, self.out_dir.parent)
                      for p in [*folder.glob("*.vcd"), *folder.glob("*.fst")])


def _failed_tests(results_xml):
    """Names of the failed tests in a cocotb results file."""
    root = ElementTree.parse(results_xml).getroot()
    return [case.get("name") for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def _check(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class BenchBuild:
    """A built bench: what :func:`simulate_bench` runs."""

    bench: str
    preset: str
    sim: str
    waves: bool
    top: str
    module: str
    build_dir: Path
    runner: object


def _executable(sim, top, build_dir):
    """The file the simulator's build leaves (cocotb's runners name it so)."""
    return build_dir / (top if sim == "verilator" else "sim.vvp")


def build_bench(bench, *, preset="default", sim="verilator", waves=False, quiet=False,
                on_build=None):
    """Generate the Verilog of ``bench``'s top and build (or bring up to date) its simulator
    under ``build/sim/<sim>/<top>_<preset>[_waves]/``.

    Parameters
    ----------
    bench, preset, sim, waves, quiet
        As :func:`run_bench`'s.
    on_build : callable, optional
        Called with no arguments before the build when there is no simulator yet or the
        Verilog is newer than it (the build will take a while).

    Returns
    -------
    BenchBuild

    Raises
    ------
    ValueError
        If the bench, preset or simulator is unknown.
    """
    from cocotb_tools.runner import get_runner

    _check("bench", bench, BENCHES)
    _check("preset", preset, DESIGN_POINTS)
    _check("simulator", sim, SIMULATORS)
    apply()
    top, module = BENCHES[bench]
    source = generate(top, preset, sim=sim)
    build_dir = BUILD / "sim" / sim / (f"{top}_{preset}" + ("_waves" if waves else ""))
    build_dir.mkdir(parents=True, exist_ok=True)
    executable = _executable(sim, top, build_dir)
    if on_build is not None and (not executable.exists() or
                                 executable.stat().st_mtime < source.stat().st_mtime):
        on_build()
    runner = get_runner(sim)
    build_args = [*_VERILATOR_ARGS, *_public_config(top, build_dir)] \
        if sim == "verilator" else []
    runner.build(sources=[source], hdl_toplevel=top, build_dir=build_dir,
                 build_args=build_args, timescale=("1ns", "1ps"), waves=waves,
                 log_file=build_dir / "build.log" if quiet else None)
    return BenchBuild(bench, preset, sim, waves, top, module, build_dir, runner)


def simulate_bench(build, *, out_dir=None, test_filter=None, seed=None, env=None,
                   quiet=False, check=True):
    """Run the cocotb tests of a built bench (:func:`build_bench`); blocks until the
    simulator exits.

    Parameters
    ----------
    build : BenchBuild
    out_dir : Path, optional
        Where the run's results and log go: ``<build_dir>/<test module>/`` by default.
    test_filter, seed, env, quiet, check
        As :func:`run_bench`'s.

    Returns
    -------
    BenchRun

    Raises
    ------
    BenchFailure
        If ``check`` is set and a test of the bench failed, or the simulator wrote no results.
    """
    from cocotb_tools.runner import get_results

    bench, sim, preset, top = build.bench, build.sim, build.preset, build.top
    out_dir = build.build_dir / build.module.rpartition(".")[2] if out_dir is None \
        else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("*.json"), out_dir / "results.xml"]:
        stale.unlink(missing_ok=True)  # a crashed run must not pass for an old one
    results_xml = out_dir / "results.xml"
    python_path = os.pathsep.join([str(BUILD.parent), os.environ.get("PYTHONPATH", "")])
    extra_env = {"JALAPENO_PRESET": preset, "JALAPENO_OUT": str(out_dir),
                 "PYTHONPATH": python_path}
    extra_env.update(env or {})
    try:
        build.runner.test(hdl_toplevel=top, test_module=build.module, test_filter=test_filter,
                          seed=seed, build_dir=build.build_dir, test_dir=out_dir,
                          results_xml=str(results_xml), extra_env=extra_env,
                          waves=build.waves, timescale=("1ns", "1ps"),
                          log_file=out_dir / "sim.log" if quiet else None)
    except SystemExit as exit:
        # Under pytest the runner exits on a failed test; the results file says which.
        if not results_xml.exists():
            raise BenchFailure(f"{bench} on {sim} ({preset}): the simulator exited with "
                               f"{exit.code} and wrote no results") from None
    tests, failed = get_results(results_xml)
    run = BenchRun(results_xml=results_xml, out_dir=out_dir, tests=tests, failed=failed)
    if check and failed:
        names = _failed_tests(results_xml)
        raise BenchFailure(
            f"{bench} on {sim} ({preset}): {failed} of {tests} tests failed ({', '.join(names)}); "
            f"see {results_xml.relative_to(BUILD.parent)}; for a trace: make sim BENCH={bench} "
            f"SIM={sim} PRESET={preset} WAVES=1 FILTER='{names[0] if names else ''}'")
    return run


def run_bench(bench, *, preset="default", sim="verilator", waves=False, test_filter=None,
              seed=None, env=None, quiet=False, check=True):
    """Build (if needed) and run cocotb bench ``bench``: :func:`build_bench`, then
    :func:`simulate_bench`.

    Parameters
    ----------
    bench : str
        Key of :data:`BENCHES`.
    preset : str
        Design point; the bench reads it from ``JALAPENO_PRESET``.
    sim : str
        ``"verilator"`` or ``"icarus"``.
    waves : bool
        Dump a trace into the run's folder: VCD on Verilator (its FST writer needs the lz4
        headers, which a fresh machine lacks), FST on Icarus.
    test_filter : str, optional
        Regular expression: run only the cocotb tests whose names match.
    seed : int, optional
        Seed of cocotb's and the bench's random generators (random if omitted; printed).
    env : dict, optional
        Extra environment for the bench.
    quiet : bool
        Send the build and simulator output to ``build.log`` and ``<bench>/sim.log`` instead
        of the terminal.
    check : bool
        Raise :class:`BenchFailure` if a test failed (otherwise the caller reads
        :attr:`BenchRun.failed`).

    Returns
    -------
    BenchRun

    Raises
    ------
    ValueError
        If the bench, preset or simulator is unknown.
    BenchFailure
        If ``check`` is set and a test of the bench failed.
    """
    build = build_bench(bench, preset=preset, sim=sim, waves=waves, quiet=quiet)
    return simulate_bench(build, test_filter=test_filter, seed=seed, env=env, quiet=quiet,
                      check=check)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run one cocotb bench.")
    parser.add_argument("bench", choices=list(BENCHES))
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator")
    parser.add_argument("--preset", choices=list(DESIGN_POINTS), default="default")
    parser.add_argument("--waves", action="store_true", help="dump a trace")
    parser.add_argument("--filter", dest="test_filter", help="regex of cocotb tests to run")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    try:
        run = run_bench(args.bench, preset=args.preset, sim=args.sim, waves=args.waves,
                        test_filter=args.test_filter, seed=args.seed)
    except BenchFailure as error:
        sys.exit(f"error: {error}")
    print(f"{args.bench}: {run.tests} tests passed on {args.sim} ({args.preset})")
    for trace in run.traces:
        print(f"trace: {trace.relative_to(BUILD.parent)}")


if __name__ == "__main__":
    main()
