"""The HTTP side: JSON API, agent endpoints and the web console (FastAPI)."""
