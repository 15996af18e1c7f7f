"""Single int8 ops run through TFLite's own interpreters, as the oracle for the golden models.

Models come from :mod:`verification.tflite.builder` and run on

* TFLite Micro's Python interpreter (``tflite-micro`` wheel,
  ``tflite_micro.runtime.Interpreter.from_bytes``): the reference kernels, built without
  ``TFLITE_SINGLE_ROUNDING``, which the golden models match bit for bit;
* LiteRT (``ai-edge-litert``, ``ai_edge_litert.interpreter.Interpreter``) as a second opinion,
  with its reference kernels (``OpResolverType.BUILTIN_REF``) so no delegate (XNNPACK) takes
  the op and rounds its own way. Its ADD rounds as TFLite Micro's; its per-channel
  FULLY_CONNECTED requantizes in double (``round(acc * scale)``) instead, so it agrees with the
  golden model only to within one step there.

A one-input op is :func:`unary_model` with the op's name and, where it has one, its options
table: LOGISTIC and TANH need none, SOFTMAX takes ``Options("SoftmaxOptions", {"Beta": 1.0})``,
GELU ``Options("GeluOptions", {"Approximate": False})``. The TFLite Micro wheel registers no GELU
kernel, so GELU runs on LiteRT only. Ops with more operands list their tensors as
:func:`fully_connected_model` does.
"""

import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter
from ai_edge_litert.interpreter import OpResolverType
from tflite_micro import runtime as tflm

from verification.tflite.builder import Options, Tensor, single_op_model

__all__ = [
    "activation", "fully_connected_model", "add_model", "unary_model", "run_tflm",
    "run_litert",
]

_NO_ACTIVATION = Options("FullyConnectedOptions", {"FusedActivationFunction": 0})
_ITEM_SIZES = {tflite.TensorType.INT8: 1, tflite.TensorType.INT16: 2,
               tflite.TensorType.INT32: 4, tflite.TensorType.FLOAT32: 4}
#: Room for the interpreter's own structures in the TFLite Micro arena.
_ARENA_OVERHEAD = 32 * 1024


def activation(name, shape, scale, zero_point):
    """A per-tensor quantized int8 model input or output."""
    return Tensor(name, np.int8, tuple(shape), (float(scale),), (int(zero_point),))


def fully_connected_model(batch, input_q, weights, weight_scales, bias, output_q):
    """int8 FULLY_CONNECTED with per-channel int8 weights and an int32 bias.

    Parameters
    ----------
    batch : int
        Rows of the ``(batch, K)`` input.
    input_q, output_q : (float, int)
        Scale and zero point of the input and output.
    weights : ndarray of int8, shape (N, K)
        One row per output channel, as TFLite stores them.
    weight_scales : array_like of float, shape (N,)
        Symmetric per-channel scales (zero point 0).
    bias : ndarray of int32, shape (N,)
        Quantized with scale ``input_scale * weight_scale``.

    Returns
    -------
    bytes
    """
    n, k = weights.shape
    weight_scales = np.asarray(weight_scales, dtype=np.float32)
    bias_scales = np.float32(input_q[0]) * weight_scales
    inputs = [
        activation("input", (batch, k), *input_q),
        Tensor("weights", np.int8, (n, k), tuple(map(float, weight_scales)), (0,) * n,
               data=np.asarray(weights, dtype=np.int8)),
        Tensor("bias", np.int32, (n,), tuple(map(float, bias_scales)), (0,) * n,
               data=np.asarray(bias, dtype=np.int32)),
    ]
    outputs = [activation("output", (batch, n), *output_q)]
    return single_op_model("FULLY_CONNECTED", inputs, outputs, _NO_ACTIVATION)


def add_model(shape, input1_q, input2_q, output_q):
    """int8 ADD of two same-shape inputs, no fused activation."""
    inputs = [activation("input1", shape, *input1_q), activation("input2", shape, *input2_q)]
    outputs = [activation("output", shape, *output_q)]
    return single_op_model("ADD", inputs, outputs,
                           Options("AddOptions", {"FusedActivationFunction": 0}))


def unary_model(op, shape, input_q, output_q, options=None):
    """An int8 op with one input and one output of the same shape (LOGISTIC, SOFTMAX, ...)."""
    return single_op_model(op, [activation("input", shape, *input_q)],
                           [activation("output", shape, *output_q)], options)


def _arena_size(model):
    """TFLite Micro arena bytes for ``model``: twice all its tensors, plus fixed overhead.

    The wheel's default (ten times the model size) is too small for models whose activations
    outweigh their constants.
    """
    graph = tflite.Model.GetRootAsModel(model, 0).Subgraphs(0)
    tensors = (graph.Tensors(i) for i in range(graph.TensorsLength()))
    total = sum(_ITEM_SIZES[t.Type()] * int(np.prod(t.ShapeAsNumpy())) for t in tensors)
    return 2 * total + _ARENA_OVERHEAD


def run_tflm(model, inputs):
    """Run a single-output ``model`` once on TFLite Micro and return its output.

    Parameters
    ----------
    model : bytes
    inputs : list of ndarray
        One array per model input, of the input's dtype and shape.

    Returns
    -------
    ndarray
    """
    interpreter = tflm.Interpreter.from_bytes(model, arena_size=_arena_size(model))
    for index, data in enumerate(inputs):
        interpreter.set_input(data, index)
    interpreter.invoke()
    return interpreter.get_output(0)


def run_litert(model, inputs):
    """Run a single-output ``model`` once on LiteRT's reference kernels; as :func:`run_tflm`."""
    interpreter = LiteRTInterpreter(model_content=model,
                                    experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    for detail, data in zip(interpreter.get_input_details(), inputs, strict=True):
        interpreter.set_tensor(detail["index"], data)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
