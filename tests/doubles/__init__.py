"""Loopback test doubles of the external services (real sockets on 127.0.0.1).

* ``TwilioDouble``: Twilio Programmable Messaging REST API (create, list, fetch, callbacks).
* ``SpeakerReceiver``: an ``http`` push loudspeaker endpoint (DESIGN.md A7).
* ``FeedServer``: configurable HTTP documents for feed sources (DESIGN.md A5).
* ``FaultPlan``: random or scripted latency, 429, 500, resets and slow answers for any of them.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names are imported lazily so that ``python -m tests.doubles.twilio`` does not import the
# module twice (runpy warns when the package already imported it).
_WHERE = {
    "Fault": "faults", "FaultPlan": "faults",
    "FeedRequest": "feed", "FeedServer": "feed",
    "Play": "http_speaker", "SpeakerReceiver": "http_speaker", "SpeakerRequest": "http_speaker",
    "TwilioDouble": "twilio", "TwilioRequest": "twilio", "num_segments": "twilio",
}

__all__ = [
    "Fault",
    "FaultPlan",
    "FeedRequest",
    "FeedServer",
    "Play",
    "SpeakerReceiver",
    "SpeakerRequest",
    "TwilioDouble",
    "TwilioRequest",
    "num_segments",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
