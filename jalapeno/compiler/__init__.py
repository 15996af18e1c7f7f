"""The Jalapeño compiler: a graph of int8 operations to a program and its constants."""

from .graph import (
    Add,
    Arena,
    Graph,
    LayerNorm,
    Linear,
    LinearWeights,
    Lut,
    MatMul,
    Quant,
    Softmax,
    Tensor,
    evaluate,
    read_tensor,
    write_tensor,
)
from .lower import CompileError, ConstPool, Program, compile_graph

__all__ = ["Add", "Arena", "Graph", "LayerNorm", "Linear", "LinearWeights", "Lut", "MatMul",
           "Quant", "Softmax", "Tensor", "evaluate", "read_tensor", "write_tensor", "CompileError",
           "ConstPool", "Program", "compile_graph"]
