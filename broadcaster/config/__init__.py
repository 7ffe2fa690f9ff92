"""Configuration: the three YAML files of DESIGN A4, validated into typed models."""

from broadcaster.config.loader import DEFAULT_PATH, Choice, Config, load_config
from broadcaster.config.models import to_e164
from broadcaster.config.paths import display

__all__ = ["DEFAULT_PATH", "Choice", "Config", "display", "load_config", "to_e164"]
