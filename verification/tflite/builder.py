"""Write single-operator ``.tflite`` models: one op, the tensors it reads and writes, nothing else.

The flatbuffer is written directly with the ``flatbuffers`` package and the schema classes of
the ``tflite`` package (the builder functions generated from TFLite's ``schema.fbs``), so no
converter or TensorFlow is needed. An op is named as in the schema's ``BuiltinOperator``
(``"FULLY_CONNECTED"``, ``"LOGISTIC"``, ...) and its options table, if it has one, as a schema
table name with its fields, e.g. ``Options("SoftmaxOptions", {"Beta": 1.0})``.
"""

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

__all__ = ["Tensor", "Options", "single_op_model"]

_TENSOR_TYPES = {
    np.dtype(np.float32): tflite.TensorType.FLOAT32,
    np.dtype(np.int32): tflite.TensorType.INT32,
    np.dtype(np.int16): tflite.TensorType.INT16,
    np.dtype(np.int8): tflite.TensorType.INT8,
}
#: ``deprecated_builtin_code`` of ops numbered past the old int8 field's range.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Tensor:
    """One tensor of a single-op model.

    Attributes
    ----------
    name : str
    dtype : numpy dtype
        int8, int16, int32 or float32.
    shape : tuple of int
    scales, zero_points : tuple
        Affine quantization, one entry per tensor or one per slice along
        ``quantized_dimension``; empty for an unquantized tensor.
    quantized_dimension : int
    data : ndarray or None
        Contents of a constant tensor (weights, bias); ``None`` makes the tensor a model input
        or output.
    """

    name: str
    dtype: np.dtype
    shape: tuple
    scales: tuple = ()
    zero_points: tuple = ()
    quantized_dimension: int = 0
    data: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Options:
    """An operator's builtin options: the schema table's name and its fields by schema name.

    ``Options("FullyConnectedOptions", {"FusedActivationFunction": 0})`` calls
    ``tflite.FullyConnectedOptionsAddFusedActivationFunction(builder, 0)``.
    """

    table: str
    fields: dict = field(default_factory=dict)


def _numpy_vector(builder, values, dtype):
    return builder.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))


def _quantization(builder, tensor):
    scales = _numpy_vector(builder, tensor.scales, np.float32)
    zero_points = _numpy_vector(builder, tensor.zero_points, np.int64)
    tflite.QuantizationParametersStart(builder)
    tflite.QuantizationParametersAddScale(builder, scales)
    tflite.QuantizationParametersAddZeroPoint(builder, zero_points)
    tflite.QuantizationParametersAddQuantizedDimension(builder, tensor.quantized_dimension)
    return tflite.QuantizationParametersEnd(builder)


def _tensor(builder, tensor, buffer):
    name = builder.CreateString(tensor.name)
    shape = _numpy_vector(builder, tensor.shape, np.int32)
    quantization = _quantization(builder, tensor) if tensor.scales else None
    tflite.TensorStart(builder)
    tflite.TensorAddName(builder, name)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, _TENSOR_TYPES[np.dtype(tensor.dtype)])
    tflite.TensorAddBuffer(builder, buffer)
    if quantization is not None:
        tflite.TensorAddQuantization(builder, quantization)
    return tflite.TensorEnd(builder)


def _buffer(builder, data):
    payload = None
    if data is not None:
        payload = _numpy_vector(builder, np.ascontiguousarray(data).view(np.uint8), np.uint8)
    tflite.BufferStart(builder)
    if payload is not None:
        tflite.BufferAddData(builder, payload)
    return tflite.BufferEnd(builder)


def _options(builder, options):
    table = options.table
    getattr(tflite, f"{table}Start")(builder)
    for name, value in options.fields.items():
        getattr(tflite, f"{table}Add{name}")(builder, value)
    return getattr(tflite, f"{table}End")(builder)


def _operator_code(builder, code):
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(
        builder, min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES))
    tflite.OperatorCodeAddBuiltinCode(builder, code)
    tflite.OperatorCodeAddVersion(builder, 1)
    return tflite.OperatorCodeEnd(builder)


def _operator(builder, inputs, outputs, options):
    inputs = _numpy_vector(builder, inputs, np.int32)
    outputs = _numpy_vector(builder, outputs, np.int32)
    table = _options(builder, options) if options is not None else None
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, inputs)
    tflite.OperatorAddOutputs(builder, outputs)
    if table is not None:
        tflite.OperatorAddBuiltinOptionsType(
            builder, getattr(tflite.BuiltinOptions, options.table))
        tflite.OperatorAddBuiltinOptions(builder, table)
    return tflite.OperatorEnd(builder)


def _table_vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def single_op_model(op, inputs, outputs, options=None):
    """Serialise a model whose one subgraph runs ``op`` once.

    Parameters
    ----------
    op : str
        ``BuiltinOperator`` name.
    inputs : list of :class:`Tensor`
        Operator inputs in schema order. Those without ``data`` become the model's inputs, in
        this order; the others are constants.
    outputs : list of :class:`Tensor`
        Operator outputs, which are also the model's.
    options : :class:`Options` or None

    Returns
    -------
    bytes
        A ``.tflite`` flatbuffer.
    """
    builder = flatbuffers.Builder(1024)
    tensors = [*inputs, *outputs]
    # Buffer 0 is the schema's empty sentinel, shared by every tensor without contents.
    constants = [t for t in tensors if t.data is not None]
    buffers = [_buffer(builder, None)] + [_buffer(builder, t.data) for t in constants]
    buffer_of = {id(t): i + 1 for i, t in enumerate(constants)}
    tensor_offsets = [_tensor(builder, t, buffer_of.get(id(t), 0)) for t in tensors]
    indices = range(len(tensors))
    operator = _operator(builder, indices[:len(inputs)], indices[len(inputs):], options)
    graph_inputs = [i for i, t in enumerate(inputs) if t.data is None]
    graph_outputs = list(indices[len(inputs):])

    tensors_vector = _table_vector(builder, tensor_offsets)
    inputs_vector = _numpy_vector(builder, graph_inputs, np.int32)
    outputs_vector = _numpy_vector(builder, graph_outputs, np.int32)
    operators_vector = _table_vector(builder, [operator])
    name = builder.CreateString(op.lower())
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensors_vector)
    tflite.SubGraphAddInputs(builder, inputs_vector)
    tflite.SubGraphAddOutputs(builder, outputs_vector)
    tflite.SubGraphAddOperators(builder, operators_vector)
    tflite.SubGraphAddName(builder, name)
    subgraph = tflite.SubGraphEnd(builder)

    codes_vector = _table_vector(
        builder, [_operator_code(builder, getattr(tflite.BuiltinOperator, op))])
    subgraphs_vector = _table_vector(builder, [subgraph])
    buffers_vector = _table_vector(builder, buffers)
    description = builder.CreateString("jalapeno single-op oracle")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, _SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(builder, codes_vector)
    tflite.ModelAddSubgraphs(builder, subgraphs_vector)
    tflite.ModelAddDescription(builder, description)
    tflite.ModelAddBuffers(builder, buffers_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
