"""The dashboard the gateway serves at /ui (overview, API, delivery, infrastructure), read from
the store's rollups and the repository KPIs; the gateway mounts it through the interface
`xvckit.stack` hands it (gateway/extensions.py) and never imports this package."""

from xvckit.web.app import CALLER, Dashboard

__all__ = ["CALLER", "Dashboard"]
