"""The board as the board simulation builds it: :class:`~fpga.soc.BoardSoC` with block-RAM
memory and a fast UART, so that a frame takes hundreds of cycles, not tens of thousands."""

from fpga.boards import BOARDS
from fpga.soc import BoardSoC

__all__ = ["BOARD_POINTS", "BoardSystem", "SIM_DIVISOR", "SIM_MEMORY_BYTES"]

#: The design points the boards carry, by name (``tiny_matrix``, ``default_matrix``): the
#: board simulation runs the core a board is built with.
BOARD_POINTS = {board.config.name: board.config for board in BOARDS.values()}

#: Clock cycles per UART bit in simulation.
SIM_DIVISOR = 8
#: Bytes of the simulated board's memory.
SIM_MEMORY_BYTES = 65536


def BoardSystem(config):
    """The simulated board for ``config``: :data:`SIM_MEMORY_BYTES` of block RAM, a UART
    of :data:`SIM_DIVISOR` cycles a bit."""
    return BoardSoC(config, memory_bytes=SIM_MEMORY_BYTES, divisor=SIM_DIVISOR)
