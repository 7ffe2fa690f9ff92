"""Text normalisation for Mandarin speech synthesis (pure functions, no I/O).

TTS engines read Arabic numerals badly or ambiguously: ``20:00`` is not "二十点", ``2026年``
must be read digit by digit, ``-5℃`` is "零下五摄氏度" and ``120`` after "拨打" is a phone number
("幺二零"), not "一百二十". :func:`normalise_for_speech` rewrites such spans into 汉字 before
synthesis, using ``cn2an`` for the numeral conversion itself, and :func:`split_sentences` cuts
the result where the composer should put a short pause.

The rules run in a fixed order, most specific first (ISO dates before ranges, times before plain
numbers), because each rule consumes the digits it converts and later rules only see what is left.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import cn2an

__all__ = ["digits_to_hanzi", "normalise_for_speech", "number_to_hanzi", "split_sentences"]

# Full-width forms that operators type with a Chinese IME; the rules below match ASCII only.
_FULLWIDTH = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)}, "％": "%", "．": ".", "～": "~", "－": "-",
     "﹣": "-", "−": "-", "＋": "+", "／": "/", "∶": ":"}
)
_ROMAN_LEVEL = {"Ⅰ": "一", "Ⅱ": "二", "Ⅲ": "三", "Ⅳ": "四", "Ⅴ": "五", "Ⅵ": "六"}
_DIGIT = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
_NUM = r"\d+(?:\.\d+)?"
_RANGE_SEP = r"\s*[~—–\-至到]\s*"
# Measure words after which 2 is read 两 ("两个", "两户"), as people say it.
_LIANG_UNITS = "个位户名人次天台件间家辆只条张口小点"
_PHONE_WORDS = r"(?:拨打|致电|电话|热线|手机|号码|联系)"
# Hotlines said digit by digit even without "拨打" before them, unless a unit shows it is a count.
_HOTLINES = r"(?<!\d)(12379|12345|12315|12320|12369|110|119|120|122)(?![\d.])"
_UNIT_AFTER = r"(?!\s*[个位户名人次天台件间家辆只条张口年月日号时点分秒元米级度%℃万千百])"

# Replacements applied last: symbols and abbreviations a villager should hear in words.
SYMBOLS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"℃|°C|ºC"), "摄氏度"),
    (re.compile(r"°"), "度"),
    (re.compile(r"km/h", re.I), "公里每小时"),
    (re.compile(r"m/s"), "米每秒"),
    (re.compile(r"(?<![A-Za-z])CO(?![A-Za-z])"), "一氧化碳"),
    (re.compile(r"%"), ""),  # a % with a number was handled by a rule; a stray one means nothing
    (re.compile(r"\s*~\s*"), "到"),
    (re.compile(r"&"), "和"),
)


def number_to_hanzi(number: str) -> str:
    """Read a non-negative decimal as a quantity: ``"28"`` → "二十八", ``"3.5"`` → "三点五"."""
    number = number.lstrip("+")
    if "." in number:
        whole, frac = number.split(".", 1)
        # cn2an pads/rounds some fractions, so the digits after the point are read one by one.
        return str(cn2an.an2cn(whole or "0", "low")) + "点" + digits_to_hanzi(frac)
    return str(cn2an.an2cn(str(int(number)), "low"))


def digits_to_hanzi(digits: str, *, yao: bool = False) -> str:
    """Read digit by digit: ``"2026"`` → ``"二零二六"``; ``yao`` reads 1 as 幺 (phone numbers)."""
    out = "".join(_DIGIT.get(d, "") for d in digits)
    return out.replace("一", "幺") if yao else out


def _signed(number: str, negative_word: str) -> str:
    if number.startswith("-"):
        return negative_word + number_to_hanzi(number[1:])
    return number_to_hanzi(number)


def _iso_date(m: re.Match[str]) -> str:
    y, mo, d = m.group(1), m.group(2), m.group(3)
    return f"{digits_to_hanzi(y)}年{number_to_hanzi(mo)}月{number_to_hanzi(d)}日"


def _clock(h: str, mi: str) -> str:
    hour = "两" if int(h) == 2 else number_to_hanzi(h)
    minute = int(mi)
    if minute == 0:
        return f"{hour}点"
    if minute < 10:
        return f"{hour}点零{number_to_hanzi(mi)}分"
    return f"{hour}点{number_to_hanzi(mi)}分"


_TIME = r"(?<![\d:])([01]?\d|2[0-4])[:：]([0-5]\d)(?![\d:])"


def _time_range(m: re.Match[str]) -> str:
    return _clock(m.group(1), m.group(2)) + "到" + _clock(m.group(3), m.group(4))


def _temperature(m: re.Match[str]) -> str:
    first = _signed(m.group(1), "零下")
    if m.group(2) is None:
        return first + "摄氏度"
    return first + "到" + _signed(m.group(2), "零下") + "摄氏度"


def _percent(m: re.Match[str]) -> str:
    return "百分之" + _signed(m.group(1), "负")


def _phone_after_word(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(2))
    return m.group(1) + digits_to_hanzi(digits, yao=True)


def _range(m: re.Match[str]) -> str:
    return number_to_hanzi(m.group(1)) + "到" + number_to_hanzi(m.group(2))


def _plain_number(m: re.Match[str]) -> str:
    number, after = m.group(1), m.string[m.end() : m.end() + 1]
    before = m.string[m.start() - 1 : m.start()] if m.start() else ""
    if number == "2" and after and after in _LIANG_UNITS and before != "第":
        return "两"
    return number_to_hanzi(number)


# (pattern, replacement) in the order they must run; see the module docstring for why.
RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),  # thousands separators: 10,000 → 10000
    (re.compile(r"【([^】]*)】"), r"\1，"),  # SMS-style sender brackets become a pause
    (re.compile(r"([ⅠⅡⅢⅣⅤⅥ])(?=\s*级)"), lambda m: _ROMAN_LEVEL[m.group(1)]),
    (re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"), _iso_date),
    (re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)"), lambda m: digits_to_hanzi(m.group(1), yao=True)),
    (re.compile("(" + _PHONE_WORDS + r"[^\d，。,；;]{0,4}?[:：\s]*)(\d[\d\- ]{1,14}\d)"),
     _phone_after_word),
    (re.compile(_HOTLINES + _UNIT_AFTER), lambda m: digits_to_hanzi(m.group(1), yao=True)),
    (re.compile(r"(\d{4})(?=\s*年)"), lambda m: digits_to_hanzi(m.group(1))),
    (re.compile(_TIME + _RANGE_SEP + _TIME), _time_range),
    (re.compile(_TIME), lambda m: _clock(m.group(1), m.group(2))),
    (re.compile(rf"(?<![\d.])(-?{_NUM})(?:\s*(?:℃|°C))?(?:{_RANGE_SEP}(-?{_NUM}))?\s*(?:℃|°C)"),
     _temperature),
    (re.compile(rf"(?<![\d.])(-?{_NUM})\s*%"), _percent),
    (re.compile(rf"(?<![\d.])({_NUM})\s*[~—–\-至]\s*({_NUM})(?![\d.])"), _range),
    (re.compile(rf"(?<![\dA-Za-z.])-({_NUM})(?=\s*度)"),
     lambda m: "零下" + number_to_hanzi(m.group(1))),
    (re.compile(rf"(?<![\dA-Za-z.])-({_NUM})"), lambda m: "负" + number_to_hanzi(m.group(1))),
    (re.compile(rf"({_NUM})"), _plain_number),
)


def normalise_for_speech(text: str) -> str:
    """Rewrite numbers, dates, times, temperatures, percentages and symbols into spoken 汉字.

    >>> normalise_for_speech("11月28日20:00起，气温-5℃，一氧化碳中毒气象条件4级")
    '十一月二十八日二十点起，气温零下五摄氏度，一氧化碳中毒气象条件四级'
    """
    out = text.translate(_FULLWIDTH)
    for pattern, repl in RULES:
        out = pattern.sub(repl, out)
    for pattern, words in SYMBOLS:
        out = pattern.sub(words, out)
    return re.sub(r"[ \t]+", " ", out).strip()


# A sentence ends at Chinese or ASCII terminal punctuation, a colon (the "请注意：" before the
# message proper deserves a breath), or a line break. ASCII '.' and ':' only count when not inside
# a number or a time.
_SENTENCE_END = re.compile(r"(?:[。！？!?；;：…\n]|:(?!\d)|\.(?!\d))+")
_ONLY_PUNCT = re.compile(r"^[\s，,、。！？!?；;：:…\.\-—\"'“”‘’（）()]*$")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, keeping each one's closing punctuation, dropping empty ones.

    >>> split_sentences("各位村民请注意：今晚4级。请通风！")
    ['各位村民请注意：', '今晚4级。', '请通风！']
    """
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        sentences.append(text[start : m.end()])
        start = m.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if not _ONLY_PUNCT.match(s)]
