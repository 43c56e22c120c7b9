"""rl_core: pure PyTorch + Gymnasium core of mdpt. Imports neither Ray nor Optuna."""

__version__ = "0.1.0"
