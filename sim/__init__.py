"""Verilog generation, simulation tops and the cocotb runner wrapper."""
