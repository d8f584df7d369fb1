"""minrnn: minimal character-level recurrent language models (RNN, LSTM, GRU).

Importing the package loads nothing heavy: minrnn.reference is standard-library only.
"""

__version__ = "0.5.0"
