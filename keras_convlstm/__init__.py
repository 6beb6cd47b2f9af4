"""keras_convlstm: next-frame video prediction with Convolutional LSTMs in Keras 3."""

__version__ = "0.1.0"
