"""Torch glue: analog layers (linear, convolutions, recurrent) and model conversion."""

from .conv import AnalogConv1d, AnalogConv2d, AnalogConv3d
from .convert import ConversionReport, convert
from .layers import AnalogLinear
from .recurrent import AnalogGRU, AnalogGRUCell, AnalogLSTM, AnalogLSTMCell, AnalogRNN, AnalogRNNCell

__all__ = ["AnalogConv1d", "AnalogConv2d", "AnalogConv3d", "AnalogGRU", "AnalogGRUCell", "AnalogLSTM",
           "AnalogLSTMCell", "AnalogLinear", "AnalogRNN", "AnalogRNNCell", "ConversionReport", "convert"]
