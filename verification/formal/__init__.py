"""Formal verification: Amaranth harnesses proved with SymbiYosys (``make formal``).

A proof (:class:`Proof`) is a harness builder — the design under test, ``Assume`` on its
environment, ``Assert`` properties and ``Cover`` goals — with a SymbiYosys mode and depth;
:func:`run_proof` converts the harness to RTLIL, writes the ``.sby`` file under
``build/formal/<proof>/`` and runs it with the ``smtbmc yices`` engine. :data:`PROOFS` lists
every proof; ``python -m verification.formal [--proof NAME ...]`` runs them.

:func:`axi_stable` and :func:`assume_axi_stable` state the AXI handshake rule of one channel,
for the design's side and the environment's.
"""

from .axi import assume_axi_stable, axi_stable, channel_name, payload
from .flow import MODES, Harness, Proof, Result, component_inputs, format_table, run_proof
from .proofs import PROOFS

__all__ = [
    "axi_stable", "assume_axi_stable", "channel_name", "payload",
    "MODES", "Harness", "Proof", "Result", "component_inputs", "run_proof", "format_table",
    "PROOFS",
]
