"""The village playback agent (``broadcaster agent``, DESIGN A7).

Runs on the broadcast-room PC next to the amplifier. It long-polls the server for play commands,
downloads and checks the audio, plays it at ``play_at`` through a local player and reports the
result. Everything it needs to keep its promises is on disk under ``cache_dir``:

* ``commands.json``: known commands and what became of them (so a restart never plays twice);
* ``audio/{sha256}.{ext}``: verified audio files;
* ``results/{id}.json``: results not yet accepted by the server (sent when it is back).

So a server outage between download and ``play_at`` changes nothing audible. A command is never
played after ``expires_at``; it is reported ``expired`` instead. Two threads: the network thread
(poll, download, send results) and the playing thread (on time, from the cache only).

Log lines are English; the console lines for the village operator are Chinese.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import requests

from broadcaster.agent.players import Player
from broadcaster.errors import AgentError
from broadcaster.logutil import set_timezone
from broadcaster.timeutil import Clock

log = logging.getLogger("broadcaster.agent")


_town_tz: tzinfo | None = None  # learnt from the server's commands (their offsets are the town's)


def say(msg: str) -> None:
    """A console line for the village operator (Chinese), with the town's time: the PC's own
    zone may be anything (a fresh Windows install, a container in UTC)."""
    now = datetime.now(_town_tz) if _town_tz else datetime.now()
    print(f"{now:%H:%M:%S} {msg}", flush=True)


def _learn_zone(play_at: datetime) -> None:
    """The server sends times with the town's offset: show and log times in that zone."""
    global _town_tz
    if play_at.tzinfo is not None and _town_tz is None:
        _town_tz = play_at.tzinfo
        set_timezone(_town_tz)


def _parse(ts: str) -> datetime:
    dt = datetime.fromisoformat(ts)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


class Agent:
    """One speaker's agent. ``clock`` and ``player`` are injectable so tests can drive it."""

    def __init__(self, server: str, token: str, cache_dir: Path, player: Player,
                 clock: Clock | None = None, wait: float = 30, session: requests.Session | None = None) -> None:
        self.server = server.rstrip("/")
        self.cache = Path(cache_dir)
        self.player = player
        self.clock = clock or Clock()
        self.wait = wait
        self.http = session or requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        (self.cache / "audio").mkdir(parents=True, exist_ok=True)
        (self.cache / "results").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Event()  # new commands: the playing thread looks again
        self.etag: str | None = None  # of the last commands answer: the server holds the poll until it changes
        self.online: bool | None = None
        self.commands: dict[str, dict[str, Any]] = self._load()

    # ------------------------------------------------------------- local state

    def _load(self) -> dict[str, dict[str, Any]]:
        path = self.cache / "commands.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("commands.json unreadable; starting with no cached commands")
            return {}

    def _save(self) -> None:
        _write_json(self.cache / "commands.json", self.commands)

    def audio_path(self, cmd: dict[str, Any]) -> Path:
        ext = cmd["audio_url"].rsplit("?", 1)[0].rsplit(".", 1)[-1]
        return self.cache / "audio" / f"{cmd['sha256']}.{ext if ext in ('mp3', 'wav') else 'mp3'}"

    # ----------------------------------------------------------------- network

    def _net_ok(self) -> None:
        if self.online is not True:
            log.info("server reachable: %s", self.server)
            if self.online is False:
                say("已重新连接服务器。")
        self.online = True

    def _net_down(self, exc: Exception) -> None:
        if self.online is not False:
            log.warning("server unreachable (%s); working from the cache", type(exc).__name__)
            say("无法连接服务器，将按本地缓存继续按时播放，结果稍后上报。")
        self.online = False

    def sync_once(self, wait: float | None = None) -> None:
        """One round of network work: send queued results, fetch commands, download audio."""
        self.flush_results()
        wait = self.wait if wait is None else wait
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            resp = self.http.get(f"{self.server}/api/agent/v1/commands", params={"wait": wait},
                                 headers=headers, timeout=(5, wait + 15))
        except requests.RequestException as exc:
            self._net_down(exc)
            self._stop.wait(min(5.0, max(1.0, wait)))
            return
        if resp.status_code in (401, 403):
            raise AgentError(f"服务器拒绝了令牌（HTTP {resp.status_code}），请检查 --token。")
        if resp.status_code != 200:
            log.warning("commands: HTTP %d", resp.status_code)
            self._stop.wait(2)
            return
        self._net_ok()
        self.merge(resp.json())
        self.etag = resp.headers.get("ETag")
        self.download_missing()

    def merge(self, cmds: list[dict[str, Any]]) -> None:
        """Take the server's answer: new commands are kept; withdrawn ones are dropped unplayed."""
        with self._lock:
            for c in cmds:
                key = str(c["id"])
                if c.get("cancelled"):
                    self._withdraw(key)
                    continue
                if key in self.commands:
                    continue
                self.commands[key] = {**c, "done": None}
                when = _parse(c["play_at"])
                _learn_zone(when)
                log.info("command %s: play at %s (expires %s)", key, c["play_at"], c["expires_at"])
                # The server's offset is the town's: shown as the town's time whatever this PC's zone.
                say(f"收到播放任务 #{key}，将于 {when:%m-%d %H:%M:%S} 播放 {c.get('repeat', 1)} 遍。")
            self._prune()
            self._save()
        self._changed.set()

    def _withdraw(self, key: str) -> None:
        """The server withdrew command ``key`` (a cancelled broadcast, a superseded alert)."""
        c = self.commands.get(key)
        if c is not None and c["done"]:
            return  # already played (or failed/expired): that result tells the server what happened
        if c is not None:
            c["done"] = "cancelled"
            log.info("command %s withdrawn by the server; it will not play", key)
            say(f"任务 #{key} 已被撤回，不再播放。")
        # Acknowledge (also for a command this agent never had), so the server stops listing it.
        self.queue_result(key, "cancelled")

    def _prune(self) -> None:
        old = self.clock.now() - timedelta(days=2)
        for key in [k for k, c in self.commands.items() if c["done"] and _parse(c["expires_at"]) < old]:
            del self.commands[key]

    def download_missing(self) -> None:
        with self._lock:
            todo = [c for c in self.commands.values() if not c["done"] and not self.audio_path(c).exists()]
        for c in todo:
            try:
                self.download(c)
            except requests.RequestException as exc:
                self._net_down(exc)
            except ValueError as exc:
                log.warning("command %s: %s", c["id"], exc)

    def download(self, cmd: dict[str, Any]) -> Path:
        """Fetch the audio, check its sha256, and store it in the cache."""
        target = self.audio_path(cmd)
        resp = self.http.get(cmd["audio_url"], timeout=(5, 120))
        if resp.status_code != 200:
            raise ValueError(f"audio download: HTTP {resp.status_code}")
        digest = hashlib.sha256(resp.content).hexdigest()
        if digest != cmd["sha256"]:
            raise ValueError(f"audio sha256 mismatch (got {digest[:12]}…)")
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(resp.content)
        os.replace(tmp, target)
        log.info("command %s: audio cached (%d bytes)", cmd["id"], len(resp.content))
        return target

    def queue_result(self, cmd_id: str, status: str, played_at: datetime | None = None,
                     error: str | None = None) -> None:
        body: dict[str, Any] = {"status": status}
        if played_at:
            body["played_at"] = played_at.isoformat()
        if error:
            body["error"] = error[:1000]
        _write_json(self.cache / "results" / f"{cmd_id}.json", body)

    def flush_results(self) -> int:
        """POST queued results; keep those the server could not take. Returns how many are left."""
        # One flush at a time (the player thread and the network thread both flush): a second
        # caller waits and then finds the results already delivered, so none is posted twice.
        with self._flush_lock:
            return self._flush_results()

    def _flush_results(self) -> int:
        left = 0
        for path in sorted((self.cache / "results").glob("*.json")):
            cmd_id = path.stem
            try:
                resp = self.http.post(f"{self.server}/api/agent/v1/commands/{cmd_id}/result",
                                      data=path.read_bytes(), headers={"Content-Type": "application/json"},
                                      timeout=(5, 20))
            except requests.RequestException as exc:
                self._net_down(exc)
                return left + 1
            if resp.status_code < 300 or resp.status_code in (404, 422):
                if resp.status_code >= 300:  # the server will never take it: do not retry forever
                    log.warning("result %s rejected: HTTP %d %s", cmd_id, resp.status_code, resp.text[:200])
                else:
                    log.info("result %s delivered", cmd_id)
                path.unlink(missing_ok=True)
            else:
                left += 1
        return left

    # ----------------------------------------------------------------- playing

    def due(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            return sorted((c for c in self.commands.values() if not c["done"] and _parse(c["play_at"]) <= now),
                          key=lambda c: c["play_at"])

    def seconds_to_next(self, cap: float = 5.0) -> float:
        """How long the playing thread may sleep: until the next command's time, at most ``cap``."""
        now = self.clock.now()
        with self._lock:
            waits = [(_parse(c["play_at"]) - now).total_seconds() for c in self.commands.values() if not c["done"]]
        return max(0.0, min([cap, *waits]))

    def tick(self) -> int:
        """Play (or expire) every command that is due. Returns how many were settled."""
        n = 0
        for c in self.due():
            self._settle(c)
            n += 1
        return n

    def _finish(self, c: dict[str, Any], status: str, played_at: datetime | None = None,
                error: str | None = None) -> None:
        with self._lock:
            # A play that finished after the withdrawal arrived was still heard: report "played".
            c["done"] = status
            self._save()
        self.queue_result(str(c["id"]), status, played_at, error)

    def _settle(self, c: dict[str, Any]) -> None:
        key = str(c["id"])
        expires = _parse(c["expires_at"])
        path = self.audio_path(c)
        if self.clock.now() >= expires:
            log.warning("command %s expired before it could play", key)
            say(f"任务 #{key} 已过期，未播放。")
            self._finish(c, "expired", error="expired before it could play"
                         + ("" if path.exists() else " (audio not downloaded)"))
            return
        if not path.exists():
            return  # not downloaded yet: the network thread keeps trying until it expires
        with self._lock:
            if c["done"]:
                return  # withdrawn by the server a moment ago
            c["done"] = "playing"
        started = self.clock.now()
        say(f"开始播放任务 #{key}（共 {c.get('repeat', 1)} 遍）。")
        try:
            for i in range(int(c.get("repeat") or 1)):
                if i and self.clock.now() >= expires:
                    break  # never start another repeat after the expiry
                self.player(path)
        except Exception as exc:  # noqa: BLE001 - any player problem is a failed play, not a crash
            log.error("command %s: player failed: %s", key, exc)
            say(f"任务 #{key} 播放失败：{exc}")
            self._finish(c, "failed", error=str(exc))
            return
        log.info("command %s played at %s", key, started.isoformat())
        say(f"任务 #{key} 播放完成。")
        self._finish(c, "played", started)

    # --------------------------------------------------------------------- run

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def run(self) -> None:
        """Until stopped: the network thread syncs, this thread plays on time."""
        net = threading.Thread(target=self._net_loop, name="agent-net", daemon=True)
        net.start()
        say(f"广播室代理已启动，服务器 {self.server}，缓存目录 {self.cache}。")
        while not self._stop.is_set():
            if self.tick():
                threading.Thread(target=self.flush_results, daemon=True).start()
            # Asleep until the next play (or new commands), not polling: an idle agent costs nothing.
            self._changed.wait(self.seconds_to_next())
            self._changed.clear()
            if not net.is_alive():
                break
        self._stop.set()
        if getattr(self, "fatal", None):
            raise self.fatal  # type: ignore[misc]

    def _net_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except AgentError as exc:
                self.fatal = exc
                self._stop.set()
            except Exception:  # noqa: BLE001 - keep polling whatever happens
                log.exception("agent sync failed; retrying")
                self._stop.wait(2)


def default_cache_dir() -> Path:
    """``~/.cache/broadcaster-agent`` (``%LOCALAPPDATA%`` on Windows), else ``var/agent``."""
    base = os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
    home = Path(base) if base else Path.home() / ".cache"
    try:
        path = home / "broadcaster-agent"
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path("var/agent")
