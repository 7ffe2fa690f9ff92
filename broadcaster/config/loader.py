"""Load, substitute and validate the three configuration files, collecting every problem.

Each problem is reported as ``file: path.to.key: message``; nothing is half-loaded.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from broadcaster import plugins
from broadcaster.config.books import read_books, workbook_paths
from broadcaster.config.checks import cross_check
from broadcaster.config.roster import BUILTIN_GROUPS
from broadcaster.config.models import Choice, Config, DirectoryFile, RulesFile, Settings, Village
from broadcaster.config.paths import display
from broadcaster.errors import ConfigError, Problem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_PATH = Path("config/broadcaster.yaml")


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _msg(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _validation_problems(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for err in exc.errors():
        path = _loc(err["loc"])
        if prefix:
            path = prefix + ("" if not path or path.startswith("[") else ".") + path
        out.append(Problem(file, path, _msg(err)))
    return out


def read_yaml(path: Path, problems: list[Problem]) -> Any:
    """Parse a YAML file with the safe loader; on failure record a problem and return None."""
    file = display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(file, "", f"cannot read file: {exc.strerror}"))
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(file, where, f"YAML syntax error: {what}"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(file, "", "expected a mapping of keys at the top level"))
        return None
    return data


def substitute(data: Any, file: str, problems: list[Problem], path: str = "") -> Any:
    """Replace ``${VAR}`` in every string from the environment; a missing variable is a problem."""
    if isinstance(data, dict):
        return {k: substitute(v, file, problems, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, file, problems, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str):

        def repl(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                problems.append(Problem(file, path, f"environment variable {m.group(1)} is not set"))
                return ""
            return value

        return _VAR.sub(repl, data)
    return data


def _plugin(kind: str, name: Any, file: str, path: str, problems: list[Problem], what: str) -> type[Any] | None:
    """The plugin class installed as ``name``, or None with a problem naming the known ones."""
    try:
        return plugins.get(kind, name) if isinstance(name, str) else None
    except KeyError:
        pass
    except plugins.PluginError as exc:
        problems.append(Problem(file, path, str(exc)))
        return None
    problems.append(Problem(file, path, f"unknown {what} {name!r}; installed: {', '.join(plugins.names(kind))}"))
    return None


def _typed(raw: Any, kind: str, file: str, path: str, problems: list[Problem], what: str) -> BaseModel | None:
    """Validate a mapping with the model of the plugin its ``type`` names, keeping the user's path."""
    if not isinstance(raw, dict):
        problems.append(Problem(file, path, f"expected a mapping for the {what}"))
        return None
    cls = _plugin(kind, raw.get("type"), file, f"{path}.type", problems, f"{what} type")
    if cls is None:
        return None
    try:
        return cls.Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_validation_problems(file, exc, path))
        return None


def _choice(kind: str, name: str, data: dict[str, Any], file: str, path: str, problems: list[Problem],
            what: str, section: str) -> Choice | None:
    """Validate the settings ``data`` of the plugin ``name`` chosen at ``path`` (errors name
    ``section`` keys as ``{section}.{key}``)."""
    cls = _plugin(kind, name, file, path, problems, what)
    if cls is None:
        return None
    try:
        return Choice(name, cls.Config.model_validate(data))
    except ValidationError as exc:
        problems.extend(_validation_problems(file, exc, section))
        return None


def _sms_choice(settings: Settings, raw: dict[str, Any], file: str, problems: list[Problem]) -> Choice | None:
    sms = settings.sms
    known = set(type(sms).model_fields) | {f.alias for f in type(sms).model_fields.values() if f.alias}
    for key in (sms.model_extra or {}):
        if key not in known and key not in plugins.names("sms"):
            problems.append(Problem(file, f"sms.{key}", "unknown key"))
    where = "sms.providers" if sms.providers else "sms.provider"
    if len(set(sms.chosen)) != len(sms.chosen):
        problems.append(Problem(file, where, "短信服务商重复 / a provider is named twice"))
        return None
    choices: list[Choice] = []
    for name in sms.chosen:  # with ``providers``: failover order, the first used first
        section = (raw.get("sms") or {}).get(name) or {}
        if not isinstance(section, dict):
            problems.append(Problem(file, f"sms.{name}", "expected a mapping"))
            return None
        c = _choice("sms", name, section, file, where, problems, "SMS provider", f"sms.{name}")
        if c is None:
            return None
        choices.append(c)
    return Choice(choices[0].name, choices[0].config, tuple(choices[1:]))


def _tts_choice(settings: Settings, raw: dict[str, Any], file: str, problems: list[Problem]) -> Choice | None:
    audio = settings.audio
    for key in (audio.model_extra or {}):
        if key not in plugins.names("tts"):
            problems.append(Problem(file, f"audio.{key}", "unknown key"))
    if audio.fallback and audio.fallback not in plugins.names("tts"):
        problems.append(Problem(file, "audio.fallback", f"未知的语音合成引擎 / unknown speech engine {audio.fallback!r}"))
    section = (raw.get("audio") or {}).get(audio.tts) or {}
    if not isinstance(section, dict):
        problems.append(Problem(file, f"audio.{audio.tts}", "expected a mapping"))
        return None
    try:
        cls = plugins.get("tts", audio.tts)
    except (KeyError, plugins.PluginError):
        return _choice("tts", audio.tts, {}, file, "audio.tts", problems, "speech engine", "audio")
    # ``voice`` and ``command`` live in ``audio`` itself, for every engine that takes them.
    common = {k: v for k, v in (("voice", audio.voice), ("command", audio.command), ("timeout_s", audio.timeout_s))
              if k in cls.Config.model_fields and v is not None and k not in section
              and (k in audio.model_fields_set or k == "command" or audio.tts in ("espeak", "command"))}
    where = f"audio.{audio.tts}" if section else "audio"
    return _choice("tts", audio.tts, {**common, **section}, file, "audio.tts", problems, "speech engine", where)


def load_config(path: Path | str | None = None, now: datetime | None = None) -> Config:
    """Load and validate everything; raise ConfigError listing every problem found.

    ``now`` (default: the wall clock) is the moment the duty roster is checked from: ``check``
    warns about the season's days from then on without a roster row.
    """
    path = Path(path or os.environ.get("BROADCASTER_CONFIG") or DEFAULT_PATH).resolve()
    problems: list[Problem] = []
    main_file = display(path)
    raw = read_yaml(path, problems)
    if raw is None:
        raise ConfigError(problems)
    raw = substitute(raw, main_file, problems)
    settings = None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_validation_problems(main_file, exc))

    sources: list[Any] = []
    feed = raw.get("feed")
    if feed is None:
        problems.append(Problem(main_file, "feed", "required key is missing"))
    elif isinstance(feed, dict) and "sources" in feed:
        extra = set(feed) - {"sources"}
        if extra:
            problems.append(Problem(main_file, f"feed.{sorted(extra)[0]}", "unknown key beside `sources`"))
        items = feed["sources"] if isinstance(feed["sources"], list) else []
        if not items:
            problems.append(Problem(main_file, "feed.sources", "give at least one source"))
        for i, item in enumerate(items):
            m = _typed(item, "feeds", main_file, f"feed.sources[{i}]", problems, "feed source")
            if m is not None:
                sources.append(m)  # type: ignore[arg-type]
    else:
        m = _typed(feed, "feeds", main_file, "feed", problems, "feed source")
        if m is not None:
            sources.append(m)  # type: ignore[arg-type]

    if settings is None:
        raise ConfigError(problems)
    sms = _sms_choice(settings, raw, main_file, problems)
    tts = _tts_choice(settings, raw, main_file, problems)
    base = path.parent
    rules_path = settings.rules if settings.rules.is_absolute() else (base / settings.rules).resolve()
    dir_path = settings.directory if settings.directory.is_absolute() else (base / settings.directory).resolve()

    rules = directory = None
    rules_raw = read_yaml(rules_path, problems)
    if rules_raw is not None:
        rules_raw = substitute(rules_raw, display(rules_path), problems)
        try:
            rules = RulesFile.model_validate(rules_raw)
        except ValidationError as exc:
            problems.extend(_validation_problems(display(rules_path), exc))
    dir_raw = read_yaml(dir_path, problems)
    speakers: dict[str, tuple[Village, Any]] = {}
    displays: dict[str, tuple[Village, Any]] = {}
    chats: dict[str, Any] = {}
    if dir_raw is not None:
        dir_file = display(dir_path)
        dir_raw = substitute(dir_raw, dir_file, problems)
        try:
            directory = DirectoryFile.model_validate(dir_raw)
        except ValidationError as exc:
            problems.extend(_validation_problems(dir_file, exc))
        if directory is not None:
            for name, label in BUILTIN_GROUPS.items():  # A13: they exist whether declared or not
                directory.groups.setdefault(name, label)
            for vi, village in enumerate(directory.villages):
                for si, sp in enumerate(village.speakers):
                    where = f"villages[{vi}].speakers[{si}]"
                    m = _typed(sp, "speakers", dir_file, where, problems, "speaker")
                    if m is None:
                        continue
                    if m.id in speakers:  # type: ignore[attr-defined]
                        problems.append(Problem(dir_file, f"{where}.id", f"duplicate speaker id {m.id!r}"))  # type: ignore[attr-defined]
                    speakers[m.id] = (village, m)  # type: ignore[attr-defined]
                for si, sp in enumerate(village.displays):
                    where = f"villages[{vi}].displays[{si}]"
                    m = _typed(sp, "displays", dir_file, where, problems, "display")
                    if m is None:
                        continue
                    if m.id in displays:  # type: ignore[attr-defined]
                        problems.append(Problem(dir_file, f"{where}.id", f"duplicate display id {m.id!r}"))  # type: ignore[attr-defined]
                    displays[m.id] = (village, m)  # type: ignore[attr-defined]
            for ci, ch in enumerate(directory.chats):
                m = _typed(ch, "chats", dir_file, f"chats[{ci}]", problems, "chat robot")
                if m is None:
                    continue
                if m.id in chats:  # type: ignore[attr-defined]
                    problems.append(Problem(dir_file, f"chats[{ci}].id", f"duplicate chat id {m.id!r}"))  # type: ignore[attr-defined]
                chats[m.id] = m  # type: ignore[attr-defined]

    if rules is None or directory is None or sms is None or tts is None:
        raise ConfigError(problems)
    cfg = Config(
        path=path,
        settings=settings,
        sources=sources,
        rules=rules,
        directory=directory,
        speakers=speakers,
        directory_dir=dir_path.parent,
        sms=sms,
        tts=tts,
        chats=chats,
        displays=displays,
    )
    d = directory
    if d.households_file is not None or d.duty_file is not None:
        hp, dp = workbook_paths(d.households_file, d.duty_file, dir_path)
        cfg.book, found = read_books(hp, dp, d.contacts, {v.id: v.name for v in d.villages},
                                     settings.schedule.season.bounds(), cfg.tz, now or datetime.now(cfg.tz))
        problems.extend(found)
    else:
        cfg.book, _ = read_books(None, None, d.contacts, {}, settings.schedule.season.bounds(), cfg.tz,
                                 now or datetime.now(cfg.tz))
    problems.extend(cross_check(cfg, display(rules_path), display(dir_path)))
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ConfigError(errors + [p for p in problems if p.warning])
    cfg.warnings = [p for p in problems if p.warning]
    return cfg
