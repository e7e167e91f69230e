"""The process kubelet's test fixtures (``kplane``, ``kk``); see ``kubelet_support.py``."""

from .kubelet_support import kk, kplane  # noqa: F401
