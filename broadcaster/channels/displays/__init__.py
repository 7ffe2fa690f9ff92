"""Display screens (电子显示屏, DESIGN A12): one plugin per display type."""

from broadcaster.channels.displays.base import DisplayChannel, DisplayConfig, DisplayJob

__all__ = ["DisplayChannel", "DisplayConfig", "DisplayJob", "display_types"]


def display_types() -> dict[str, type[DisplayChannel]]:
    """Every installed display type (the ``broadcaster.displays`` entry points), by name."""
    from broadcaster import plugins

    return plugins.available("displays")
