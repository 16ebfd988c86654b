"""Configuration: the `xvckit.yaml` schema and its loader."""

from xvckit.config.loader import EXAMPLE_PATH, ConfigError, from_mapping, load, resolve_path
from xvckit.config.schema import Config, GatewaySettings, ModelRoute, Provider

__all__ = [
    "EXAMPLE_PATH",
    "Config",
    "ConfigError",
    "GatewaySettings",
    "ModelRoute",
    "Provider",
    "from_mapping",
    "load",
    "resolve_path",
]
