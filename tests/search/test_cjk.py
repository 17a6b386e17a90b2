"""Folding and tokens: CJK bigrams, 繁简, pinyin, width, diacritics, standard numbers."""

from __future__ import annotations

import time

import pytest
from opencc import OpenCC

from consortia.search import cjk
from consortia.search.cjk import (
    alternatives,
    fold,
    index_tokens,
    isbn_key,
    isbn_variants,
    pinyin_query_tokens,
    query_tokens,
    segment_pinyin,
)


def test_issue_example_zhongyi_finds_zhongyiyaoxue() -> None:
    index = set(index_tokens("中医药学"))
    assert set(query_tokens("中医")) <= index
    assert set(query_tokens("中醫")) <= index  # traditional query, simplified record
    assert set(query_tokens("中医")) <= set(index_tokens("中醫藥學"))  # and the other way
    assert query_tokens("中医") == ["中医"]


@pytest.mark.parametrize("typed", ["zhong yi", "zhongyi", "Zhōng yī", "zhong1 yi1", "ZhongYi"])
@pytest.mark.parametrize("record", ["中医药学", "中醫藥學", "Zhong yi yao xue"])
def test_issue_example_pinyin_finds_zhongyi(typed: str, record: str) -> None:
    wanted = pinyin_query_tokens(typed)
    assert wanted == ["0zhong0yi"]
    assert set(wanted) <= set(index_tokens(record))


def test_pinyin_does_not_find_another_word() -> None:
    # 中药 is zhong yao: "zhong yi" must not find it, nor 医中 (yi zhong, the wrong order).
    assert not set(pinyin_query_tokens("zhong yi")) <= set(index_tokens("中药学"))
    assert not set(pinyin_query_tokens("zhong yi")) <= set(index_tokens("医中"))


def test_one_character_query_finds_it_inside_a_run() -> None:
    for ch in "中医药学":
        assert query_tokens(ch) == [ch]
        assert ch in index_tokens("中医药学")
    assert query_tokens("學") == ["学"]


def test_fold_width_case_diacritics_and_script() -> None:
    assert fold("ＡＢＣ　１２３") == "abc 123"
    assert fold("Zhōng Yī") == "zhong yi"
    assert fold("Müller Straße Ørsted Łódź") == "muller strasse orsted lodz"
    assert fold("中醫藥學") == "中医药学"
    assert fold("がくせい") == "がくせい"  # kana voicing marks are not diacritics
    assert fold("ｶﾞｸｾｲ") == "ガクセイ"  # half-width katakana become full-width
    assert fold("Harry") == "harry"


def test_traditional_folding_agrees_with_opencc_character_by_character() -> None:
    converter = OpenCC("t2s")
    path = cjk._OPENCC_DIR / "TSCharacters.txt"
    chars = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()]
    chars = [c for c in chars if len(c) == 1]
    assert len(chars) > 3000
    differ = [c for c in chars if fold(c) != fold(converter.convert(c))]
    # Ours also folds Taiwan/Hong Kong variant forms (顎 → 腭 where OpenCC gives 颚): a handful.
    assert len(differ) <= 5, differ
    for c in chars:
        assert not cjk.is_han(fold(c)) or fold(fold(c)) == fold(c)


def test_fold_of_a_part_is_a_part_of_the_fold() -> None:
    title = "中醫藥學概論：臺灣傳統醫學與現代發展"
    whole = fold(title)
    for i in range(len(title)):
        for j in range(i + 1, len(title) + 1):
            assert fold(title[i:j]) in whole


def test_index_stream_keeps_phrases_adjacent() -> None:
    stream = index_tokens("Harry Potter and the Philosopher's Stone")
    assert stream[:7] == ["harry", "potter", "and", "the", "philosopher", "s", "stone"]
    assert index_tokens("中医 基础")[:3] == ["中医", "医基", "基础"]
    assert query_tokens("中医 基础", phrase=True) == ["中医", "医基", "基础"]
    assert query_tokens("中医 基础") == ["中医", "基础"]


def test_cjk_across_punctuation_is_found_unspaced() -> None:
    assert set(query_tokens("中医基础")) <= set(index_tokens("中医：基础理论"))


def test_every_token_is_letters_and_digits_only() -> None:
    text = "中醫：Zhōng-yī! e-mail 978-7-301-04815-3 (2nd ed.) こんにちは 한국어 x_y"
    for tok in index_tokens(text):
        assert tok.isalnum(), tok


def test_numbers_are_hyphen_insensitive() -> None:
    index = set(index_tokens("ISBN 978-7-301-04815-3 (pbk.)"))
    assert set(query_tokens("9787301048153")) <= index
    assert set(query_tokens("978-7-301-04815-3")) <= index
    assert set(query_tokens("978")) <= index  # a part still finds it
    assert query_tokens("1990-2000") == ["19902000"]


def test_isbn_forms() -> None:
    assert isbn_key("7-301-04815-7") == "9787301048153"
    assert isbn_key("978 7 301 04815 3") == "9787301048153"
    assert isbn_key("0-8044-2957-x") == isbn_key("9780804429573")
    assert isbn_variants("9787301048153") == ["9787301048153", "7301048157"]
    assert isbn_variants("979-10-90636-07-1") == ["9791090636071"]  # no ISBN-10 for 979
    assert isbn_key("978-7-301-04815-0") == "9787301048150"  # bad check digit: digits kept
    assert cjk.issn_key("0317-847x") == "0317847X"


@pytest.mark.parametrize(
    ("letters", "syllables"),
    [
        ("zhongyi", ("zhong", "yi")),
        ("fangan", ("fang", "an")),
        ("xian", ("xian",)),
        ("tiananmen", ("tian", "an", "men")),
        ("xianggang", ("xiang", "gang")),
        ("zhuangzu", ("zhuang", "zu")),
        ("erhua", ("er", "hua")),
        ("qwerty", None),
        ("", None),
    ],
)
def test_segment_pinyin(letters: str, syllables: tuple[str, ...] | None) -> None:
    assert segment_pinyin(letters) == syllables


def test_segmentation_backtracks_and_stays_linear() -> None:
    # Greedy "xiang" / "shang" would leave an impossible "u" / "ong": back off one letter.
    assert segment_pinyin("xiangu") == ("xian", "gu")
    assert segment_pinyin("shangong") == ("shan", "gong")
    start = time.perf_counter()
    assert segment_pinyin("a" * 2000 + "q") is None
    assert segment_pinyin("zhong" * 400) == ("zhong",) * 400
    assert time.perf_counter() - start < 0.5


def test_syllable_table_covers_every_reading_pypinyin_gives() -> None:
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    readings = {
        to_normal(r).replace("ü", "u").replace("v", "u")
        for value in pinyin_dict.values()
        for r in value.split(",")
    }
    interjections = {"m", "n", "ng", "hm", "hng", "ê"}
    assert readings - interjections - cjk.pinyin_syllables() == set()


def test_heteronyms_take_the_phrase_reading() -> None:
    assert set(pinyin_query_tokens("yinhang")) <= set(index_tokens("中国银行"))
    assert set(pinyin_query_tokens("chongqing")) <= set(index_tokens("重庆市"))
    assert set(pinyin_query_tokens("lvse")) <= set(index_tokens("绿色食品"))
    assert set(pinyin_query_tokens("lüse")) <= set(index_tokens("绿色食品"))


def test_english_words_are_not_read_as_single_syllables() -> None:
    assert pinyin_query_tokens("long") == []
    assert pinyin_query_tokens("men") == []
    assert pinyin_query_tokens("harry potter") == []
    assert pinyin_query_tokens("中医") == []


def test_pinyin_mixed_with_other_words_keeps_them() -> None:
    assert pinyin_query_tokens("zhongyi 2010") == ["0zhong0yi", "2010"]


def test_alternatives_per_field() -> None:
    (only,) = alternatives("isbn", "7-301-04815-7")
    assert only.tokens == ("9787301048153",)
    (only,) = alternatives("title", "harr", truncation=True)
    assert only.prefix and only.tokens == ("harr",)
    (only,) = alternatives("title", "中医", truncation=True)
    assert not only.prefix  # a bigram is already whole
    plain, py = alternatives("title", "zhong yi")
    assert plain.tokens == ("zhong", "yi") and not plain.pinyin
    assert py.tokens == ("0zhong0yi",) and py.pinyin
    (phrase,) = alternatives("title", "harry potter", phrase=True)
    assert phrase.adjacent
    assert alternatives("title", "!!!") == ()
    assert alternatives("language", "中文")[0].tokens == ("chi",)


def test_is_cjk() -> None:
    assert cjk.is_cjk("中") and cjk.is_cjk("か") and cjk.is_cjk("한") and cjk.is_cjk("𠀀")
    assert not cjk.is_cjk("a") and not cjk.is_cjk("1") and not cjk.is_cjk("：")
    assert cjk.is_han("〇") and not cjk.is_han("か")


def test_a_long_word_that_is_not_pinyin_is_refused_at_once() -> None:
    """The pinyin-word pattern must not backtrack exponentially (the old nested pattern took
    minutes on 30 letters and a stray character, the shape a reader's typo or a hostile query
    has). 200 such words, each new to the cache, in well under the time one used to take."""
    import re

    from consortia.search.cjk import _PINYIN_WORD_RE

    started = time.process_time()
    for k in range(200):
        word = "zhong" * 8 + "a" * k + "!"
        assert _PINYIN_WORD_RE.fullmatch(word) is None
        assert cjk._word_syllables(word) is None
        assert cjk.index_tokens(word + " " + word)  # the Latin words are still indexed
    assert time.process_time() - started < 5
    # The same words as the nested pattern accepts (every string of up to 7 characters over
    # letters, tone digits, the apostrophe and a stray character).
    import itertools

    nested = re.compile(r"(?:[a-z]+[0-5]?)(?:'?[a-z]+[0-5]?)*")
    for n in range(7):
        for chars in itertools.product("ab1'2-", repeat=n):
            s = "".join(chars)
            assert bool(_PINYIN_WORD_RE.fullmatch(s)) == bool(nested.fullmatch(s)), s
