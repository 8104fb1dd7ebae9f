"""The package's version, where every layer may read it (``hwnas.__version__`` re-exports it):
a cost source's fingerprint names the hwnas that timed it."""

__version__ = "0.1.0"
