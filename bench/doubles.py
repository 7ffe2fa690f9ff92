"""The loopback doubles of the benchmarks, each in a process of its own.

Starts the Twilio double (tests/doubles/twilio.py) or an ``http`` loudspeaker receiver
(tests/doubles/http_speaker.py) with the given latency, prints its URL as one JSON line, then
answers commands read from stdin, one per line, each with one JSON line:

* ``clear``: forget requests, messages and plays; restart the CPU meter.
* ``stats``: what was received since ``clear`` and the CPU seconds this process used meanwhile.

EOF on stdin stops it. Separate from the measured process so that its CPU is not billed to the
code under test (on 2 cores both compete for the same CPUs all the same), and one process per
double because they would otherwise share a GIL: parsing a 250 KB multipart upload in the
receiver held up the Twilio double's answers.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

from bench.common import SID, SPEAKER_TOKEN, TOKEN
from tests.doubles.faults import FaultPlan
from tests.doubles.http_speaker import SpeakerReceiver
from tests.doubles.twilio import TwilioDouble


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _stats(tw: TwilioDouble | None, sp: SpeakerReceiver | None, cpu0: float) -> dict[str, object]:
    out: dict[str, object] = {"double_cpu_s": round(_cpu() - cpu0, 3)}
    if tw is not None:
        by_to = tw.messages_by_to()
        creates = [r for r in tw.requests if r.is_create]
        out.update({
            "twilio_requests": len(creates),
            "twilio_accepted": sum(1 for r in creates if r.status == 201),
            "twilio_messages": sum(by_to.values()),
            "twilio_distinct_to": len(by_to),
            "twilio_max_per_to": max(by_to.values(), default=0),
            "twilio_errors": sum(1 for r in creates if r.status != 201),
            "internal_errors": len(tw.internal_errors),
        })
    if sp is not None:
        out.update({
            "speaker_requests": len(sp.requests),
            "speaker_plays": len(sp.plays),
            "speaker_duplicates": len(sp.duplicates()),
            "internal_errors": len(sp.internal_errors),
        })
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("which", choices=("twilio", "speaker"))
    p.add_argument("--latency-ms", type=float, default=0)
    a = p.parse_args(argv)
    tw = sp = None
    if a.which == "twilio":
        tw = TwilioDouble(SID, TOKEN, FaultPlan(latency_ms=a.latency_ms)).start()
        print(json.dumps({"url": tw.url}), flush=True)
    else:
        sp = SpeakerReceiver(SPEAKER_TOKEN, faults=FaultPlan(latency_ms=a.latency_ms)).start()
        print(json.dumps({"url": sp.play_url}), flush=True)
    cpu0 = _cpu()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "clear":
            for d in (tw, sp):
                if d is not None:
                    d.clear()
            cpu0 = _cpu()
            out: dict[str, object] = {"ok": True}
        elif cmd == "stats":
            out = _stats(tw, sp, cpu0)
        else:
            out = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(out), flush=True)
    for d in (tw, sp):
        if d is not None:
            d.stop()


if __name__ == "__main__":
    main()
