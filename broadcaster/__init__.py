"""broadcaster: winter carbon-monoxide alerts to SMS and village loudspeakers."""

__version__ = "0.1.0"
