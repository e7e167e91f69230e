"""Temporary re-export while the controllers' client toolkit moves here (see local/controllers/base.py)."""

from .local.controllers.base import *  # noqa: F401,F403
from .local.controllers.base import (  # noqa: F401
    APIError, Client, EventRecorder, Informer, Resource, PODS, SERVICES, EVENTS,
    fmt_time, parse_time, pod_ready, owner_ref,
)
