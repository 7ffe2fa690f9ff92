"""Text normalisation for speech: table-driven cases (broadcaster.audio.speech)."""

from __future__ import annotations

import pytest

from broadcaster.audio.speech import (
    digits_to_hanzi,
    normalise_for_speech,
    number_to_hanzi,
    split_sentences,
)

NORMALISE_CASES: list[tuple[str, str]] = [
    # levels, dates, times (the brief's examples)
    ("4级", "四级"),
    ("11月28日", "十一月二十八日"),
    ("20:00", "二十点"),
    ("17:30", "十七点三十分"),
    ("2026年", "二零二六年"),
    ("-5℃", "零下五摄氏度"),
    ("88%", "百分之八十八"),
    # more dates and times
    ("2026年11月28日", "二零二六年十一月二十八日"),
    ("2026-11-28", "二零二六年十一月二十八日"),
    ("08:05", "八点零五分"),
    ("02:00", "两点"),
    ("下午2点", "下午两点"),
    ("8:00-20:00", "八点到二十点"),
    ("20:00至次日08:00", "二十点至次日八点"),
    ("17：30", "十七点三十分"),  # full-width colon
    # temperatures
    ("3.5℃", "三点五摄氏度"),
    ("－3℃", "零下三摄氏度"),  # full-width minus
    ("-5~3℃", "零下五到三摄氏度"),
    ("-5℃~-12℃", "零下五到零下十二摄氏度"),
    ("气温-5度", "气温零下五度"),
    ("5°C", "五摄氏度"),
    # percentages, decimals, ranges, big numbers
    ("12.5%", "百分之十二点五"),
    ("湿度 88 %", "湿度 百分之八十八"),
    ("0.5", "零点五"),
    ("3~4级", "三到四级"),
    ("3-4级", "三到四级"),
    ("风力3～4级，阵风5级", "风力三到四级，阵风五级"),
    ("10000人", "一万人"),
    ("10,000人", "一万人"),
    ("１２月", "十二月"),
    # 两 before measure words, 二 elsewhere
    ("2个人", "两个人"),
    ("2户", "两户"),
    ("第2", "第二"),
    ("2级", "二级"),
    # phone numbers and hotlines are read digit by digit, 1 as 幺
    ("拨打120", "拨打幺二零"),
    ("急救电话：120。", "急救电话：幺二零。"),
    ("拨打110或119", "拨打幺幺零或幺幺九"),
    ("12379预警", "幺二三七九预警"),
    ("张三13800138000", "张三幺三八零零幺三八零零零"),
    ("联系电话0351-1234567", "联系电话零三五幺幺二三四五六七"),
    ("120户", "一百二十户"),  # a count, not a hotline
    # symbols and sender brackets
    ("CO中毒", "一氧化碳中毒"),
    ("Ⅳ级", "四级"),
    ("【XX镇文化站】请通风", "XX镇文化站，请通风"),
    ("没有数字的句子。", "没有数字的句子。"),
    # a whole speaker template
    (
        "各位村民请注意：今天夜间到明天早晨，一氧化碳中毒气象条件4级，容易发生。",
        "各位村民请注意：今天夜间到明天早晨，一氧化碳中毒气象条件四级，容易发生。",
    ),
    (
        "11月28日20:00起，气温-5℃，一氧化碳中毒气象条件4级",
        "十一月二十八日二十点起，气温零下五摄氏度，一氧化碳中毒气象条件四级",
    ),
]


@pytest.mark.parametrize(("text", "spoken"), NORMALISE_CASES)
def test_normalise_for_speech(text: str, spoken: str) -> None:
    assert normalise_for_speech(text) == spoken


@pytest.mark.parametrize(("text", "spoken"), NORMALISE_CASES)
def test_normalised_text_has_no_digits_left(text: str, spoken: str) -> None:
    assert not any(ch.isdigit() for ch in normalise_for_speech(text))


@pytest.mark.parametrize(
    ("number", "hanzi"),
    [("0", "零"), ("7", "七"), ("10", "十"), ("28", "二十八"), ("105", "一百零五"),
     ("3.14", "三点一四"), ("05", "五"), ("12.50", "十二点五零")],
)
def test_number_to_hanzi(number: str, hanzi: str) -> None:
    assert number_to_hanzi(number) == hanzi


def test_digits_to_hanzi() -> None:
    assert digits_to_hanzi("2026") == "二零二六"
    assert digits_to_hanzi("12379", yao=True) == "幺二三七九"


SPLIT_CASES: list[tuple[str, list[str]]] = [
    (
        "各位村民请注意：今天夜间到明天早晨，一氧化碳中毒气象条件四级，容易发生。"
        "请保持室内通风，检查烟囱是否通畅，睡前熄灭炉火。",
        [
            "各位村民请注意：",
            "今天夜间到明天早晨，一氧化碳中毒气象条件四级，容易发生。",
            "请保持室内通风，检查烟囱是否通畅，睡前熄灭炉火。",
        ],
    ),
    ("请通风！不要封火？好的", ["请通风！", "不要封火？", "好的"]),
    ("第一句；第二句\n第三句", ["第一句；", "第二句", "第三句"]),
    ("Open the window. Check the flue!", ["Open the window.", "Check the flue!"]),
    ("气温3.5度。", ["气温3.5度。"]),  # a decimal point is not a full stop
    ("20:00起。", ["20:00起。"]),  # nor is the colon of a time
    ("结束了……", ["结束了……"]),
    ("。。！", []),
    ("", []),
]


@pytest.mark.parametrize(("text", "sentences"), SPLIT_CASES)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
