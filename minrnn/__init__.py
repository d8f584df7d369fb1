"""minrnn: minimal character-level recurrent language models (RNN, LSTM, GRU).

Importing the package loads nothing heavy: minrnn.reference is standard-library only.
"""

__version__ = "0.11.0"


def __getattr__(name):
    """minrnn.load and minrnn.train (minrnn/api.py), loaded on first use."""
    if name in ("load", "train", "Trained"):
        from minrnn import api
        return getattr(api, name)
    raise AttributeError(f"module 'minrnn' has no attribute {name!r}")
