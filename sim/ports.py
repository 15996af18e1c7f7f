"""Names of ports across the Verilog boundary, derived from a component's signature.

``verilog.convert`` names each port by its signature path joined with ``__``
(``acts__payload``). Testbenches look ports up here rather than building strings by hand,
so a misspelt or stale name fails at once with a message naming it and the real ports.
"""

import difflib

from amaranth.lib import wiring

__all__ = ["PortNameError", "port_names", "port_name", "Ports"]


class PortNameError(LookupError):
    """A port path that the component's signature does not have."""


def port_names(signature: wiring.Signature):
    """Every Verilog port name of a component with ``signature``, in signature order."""
    return ["__".join(str(part) for part in path)
            for path, member in signature.members.flatten() if member.is_port]


def port_name(signature: wiring.Signature, *path, top="top"):
    """The Verilog name of the port at ``path`` (``"acts", "payload"`` -> ``acts__payload``).

    Raises
    ------
    PortNameError
        If there is no such port; the one-line message names the closest real ports.
    """
    names = port_names(signature)
    name = "__".join(str(part) for part in path)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; ports: {', '.join(names)}"
        raise PortNameError(f"{top} has no port {name!r}{hint}")
    return name


class Ports:
    """The simulator handles of a component's ports, looked up by signature path.

    Parameters
    ----------
    dut : cocotb handle
        The top-level handle of the simulation.
    signature : wiring.Signature
        Signature of the component the top was generated from.
    top : str
        Name of the top, for messages.
    """

    def __init__(self, dut, signature: wiring.Signature, *, top: str):
        self._dut = dut
        self._signature = signature
        self._top = top

    def __call__(self, *path):
        """Handle of the port at ``path``."""
        return getattr(self._dut, port_name(self._signature, *path, top=self._top))
