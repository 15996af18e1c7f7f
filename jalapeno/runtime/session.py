"""Running compiled graphs on a :class:`~jalapeno.runtime.device.Device`, and the same graphs
on the host's reference semantics.

A :class:`Session` owns the device's memory map: constants from :data:`CONST_BASE` (placed
once and sent once, :class:`~jalapeno.compiler.lower.ConstPool`), the caller's tensors
wherever it puts them below :data:`PROGRAM_BASE`, and each program at
:data:`PROGRAM_BASE`. :meth:`Session.execute` compiles a graph, sends what is new, runs it
and adds its counters to :attr:`Session.stats`; an error code stops it with
:class:`ProgramError`.

:class:`ReferenceSession` has the same interface on a host memory image, running each graph
with :func:`jalapeno.compiler.graph.evaluate`: the results every backend must reproduce bit
for bit, at NumPy speed.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from jalapeno.compiler import ConstPool, Graph, compile_graph, evaluate
from jalapeno.compiler.cost import estimate
from jalapeno.compiler.graph import slice_rows
from jalapeno.isa import INSTRUCTION_BYTES, CoreError

__all__ = ["Session", "ReferenceSession", "Stats", "ProgramError", "CONST_BASE", "CONST_LIMIT",
           "PROGRAM_BASE", "PROGRAM_LIMIT", "MEMORY_BYTES"]

#: The memory map every session uses (4 MiB, the ``core_system`` top's memory).
MEMORY_BYTES = 1 << 22
CONST_BASE, CONST_LIMIT = 0x10000, 0x100000
PROGRAM_BASE, PROGRAM_LIMIT = 0x300000, 0x3FE000


class ProgramError(RuntimeError):
    """A program stopped with an error code."""


@dataclass
class Stats:
    """Counters summed over a session's programs.

    Attributes
    ----------
    programs, instructions, macs : int
    cycles : int
        Measured (the ``CYCLES`` counter) where the backend has timing, else 0.
    predicted : int
        The cost model's cycles for the same programs.
    wall : float
        Seconds the backend spent running them.
    runs : list of (int, int or None)
        Per program: predicted and measured cycles.
    """

    programs: int = 0
    instructions: int = 0
    macs: int = 0
    cycles: int = 0
    predicted: int = 0
    wall: float = 0.0
    runs: list = field(default_factory=list)

    def since(self, earlier: "Stats"):
        """The counts added after the snapshot ``earlier`` (a :meth:`copy`)."""
        return Stats(self.programs - earlier.programs,
                     self.instructions - earlier.instructions, self.macs - earlier.macs,
                     self.cycles - earlier.cycles, self.predicted - earlier.predicted,
                     self.wall - earlier.wall, self.runs[len(earlier.runs):])

    def copy(self):
        return Stats(self.programs, self.instructions, self.macs, self.cycles, self.predicted,
                     self.wall, list(self.runs))


class Session:
    """Graphs compiled and run on ``device`` (whose memory must hold :data:`MEMORY_BYTES`)."""

    def __init__(self, device):
        if device.memory_bytes < MEMORY_BYTES:
            raise ValueError(f"a session needs {MEMORY_BYTES} bytes of device memory, not "
                             f"{device.memory_bytes}")
        self.device = device
        self.config = device.config
        self.consts = ConstPool(CONST_BASE, CONST_LIMIT)
        self.stats = Stats()

    def write(self, addr, data):
        self.device.write(addr, data)

    def read(self, addr, length):
        return self.device.read(addr, length)

    def execute(self, graph):
        """Compile ``graph``, send its new constants and the program, run it (as several
        programs, cut between nodes, if it does not fit the program region).

        Raises
        ------
        ProgramError
            If the program stops with an error code.
        """
        program = compile_graph(graph, self.config, self.consts)
        if PROGRAM_BASE + len(program.words) * INSTRUCTION_BYTES > PROGRAM_LIMIT:
            # Nodes meet only in memory and rows are independent, so the graph can run as
            # two programs: half its nodes each, or half a node's rows each.
            nodes = graph.nodes
            if len(nodes) > 1:
                halves = nodes[:len(nodes) // 2], nodes[len(nodes) // 2:]
            elif nodes[0].out.rows > 1:
                rows = nodes[0].out.rows
                halves = [slice_rows(nodes[0], 0, rows // 2)], \
                    [slice_rows(nodes[0], rows // 2, rows - rows // 2)]
            else:
                raise ProgramError(f"a node of {len(program.words)} instructions does not fit "
                                   f"the program region")
            self.execute(Graph(list(halves[0])))
            return self.execute(Graph(list(halves[1])))
        for addr, data in self.consts.take():
            self.device.write(addr, data)
        self.device.load_program(PROGRAM_BASE, program.words)
        began = time.perf_counter()
        result = self.device.run(PROGRAM_BASE, len(program.words))
        wall = time.perf_counter() - began
        if result.code != CoreError.NONE:
            raise ProgramError(f"the program stopped with {result.code.name} at "
                               f"{result.addr:#x}")
        predicted = estimate(self.config, program.words).cycles
        s = self.stats
        s.programs += 1
        s.instructions += len(program.words)
        s.macs += result.counters["MACS"]
        s.cycles += result.cycles or 0
        s.predicted += predicted
        s.wall += wall
        s.runs.append((predicted, result.cycles))
        return result


class ReferenceSession:
    """The reference semantics of :class:`Session`: graphs evaluated on a host memory
    image of :data:`MEMORY_BYTES`, no device and no program."""

    def __init__(self, config):
        self.config = config
        self.memory = np.zeros(MEMORY_BYTES, np.uint8)
        self.stats = Stats()

    def write(self, addr, data):
        data = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray)
                             else np.ascontiguousarray(data).tobytes(), np.uint8)
        self.memory[addr:addr + len(data)] = data

    def read(self, addr, length):
        return self.memory[addr:addr + length].copy()

    def execute(self, graph):
        evaluate(graph, self.memory)
        self.stats.programs += 1
