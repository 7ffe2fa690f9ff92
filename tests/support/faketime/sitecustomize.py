"""Installed on PYTHONPATH by tests/support/clock.py: starts the shared fake wall clock in every
Python process that inherits ``BROADCASTER_FAKE_TIME`` (see that module's docstring)."""

import os

if os.environ.get("BROADCASTER_FAKE_TIME"):
    import time
    from datetime import datetime, timedelta

    import time_machine

    _fake, _, _real = os.environ["BROADCASTER_FAKE_TIME"].partition("@")
    _elapsed = time.time() - float(_real) if _real else 0.0  # not travelling yet: real time
    time_machine.travel(datetime.fromisoformat(_fake) + timedelta(seconds=_elapsed), tick=True).start()
