"""The HTTP service every AI tool points at."""

from xvckit.gateway.app import Gateway

__all__ = ["Gateway"]
