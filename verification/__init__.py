"""Golden models, cocotb testbenches and formal harnesses."""
