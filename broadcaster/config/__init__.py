"""Configuration: the three YAML files of DESIGN A4, validated into typed models."""

from broadcaster.config.loader import DEFAULT_PATH, Config, display, load_config
from broadcaster.config.models import to_e164

__all__ = ["DEFAULT_PATH", "Config", "display", "load_config", "to_e164"]
