"""Normalisation of MARC21 and UNIMARC/CNMARC records into the one record shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymarc import Field, Indicators, Record, Subfield
from stdnum import isbn as stdisbn

from consortia.catalog.marc import ReadResult, read_records
from consortia.catalog.normalize import (
    clean,
    edition_number,
    normalize,
    normalize_isbn,
    normalize_lccn,
    pages,
    qualifier,
    role,
)
from consortia.catalog.record import Classification, Isbn, Name, NormalizedRecord

DATA = Path(__file__).parents[1] / "data"
MARC = DATA / "marc"
UNIMARC = DATA / "unimarc"


def norm(path: Path, index: int = 0) -> NormalizedRecord:
    recs = [r for r in read_records(path) if isinstance(r, ReadResult)]
    r = recs[index]
    return normalize(r.record, r.flavour, r.record_id)


def marc21(*fields: Field, leader: str = "00000nam a2200000 a 4500") -> Record:
    rec = Record(leader=leader)
    rec.add_field(Field(tag="001", data="t1"), *fields)
    return rec


def df(tag: str, *subs: str, ind: str = "  ") -> Field:
    pairs = [Subfield(code=s[0], value=s[1:]) for s in subs]
    return Field(tag=tag, indicators=Indicators(ind[0], ind[1]), subfields=pairs)


# ---------------------------------------------------------------------------------------------
# pieces


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("The pragmatic programmer :", "The pragmatic programmer"),
        ("from journeyman to master /", "from journeyman to master"),
        ("Andrew Hunt, David Thomas.", "Andrew Hunt, David Thomas"),
        ("Smith, J.", "Smith, J."),  # an initial keeps its full stop
        ("2nd ed.", "2nd ed."),
        ("[New York] :", "New York"),
        ("[S.l.", "S.l."),
        ("计算机程序设计艺术：", "计算机程序设计艺术"),
        ("英文版影印／", "英文版影印"),
        ("丛书；", "丛书"),
        ("正题名＝", "正题名"),
        ("中国。", "中国"),
        ("\x88L'\x89altra faccia", "L'altra faccia"),
        ("  spaced   out  ", "spaced out"),
        (", Mariana", "Mariana"),
    ],
)
def test_clean(given_: str, expected: str) -> None:
    assert clean(given_) == expected


@pytest.mark.parametrize(
    ("statement", "number"),
    [
        ("2nd ed.", 2),
        ("Second edition.", 2),
        ("Rev. ed.", None),
        ("第2版", 2),
        ("第二版", 2),
        ("第十二版", 12),
        ("2. Aufl.", 2),
        ("3e éd.", 3),
        ("1st American ed.", 1),
        ("Di 1 ban", 1),
        ("Dai 1-han", 1),
        ("Nouvelle édition", None),
        ("", None),
        # Chinese forms without 第, the first edition, full-width digits, revised editions
        ("初版", 1),
        ("二版", 2),
        ("三版", 3),
        ("第3版", 3),
        ("第３版", 3),
        ("2版", 2),
        ("十二版", 12),
        ("第十三版", 13),
        ("修订版", None),  # revised: no number; the statement tells it apart
        ("修订第2版", 2),
        ("第2版(修订版)", 2),
        ("2012年版", None),  # a year, not an edition number
    ],
)
def test_edition_number(statement: str, number: int | None) -> None:
    assert edition_number(statement) == number


@pytest.mark.parametrize(
    ("extent", "count"),
    [
        ("xii, 345 p.", 345),
        ("345页", 345),
        ("vi, 81, [1] p.", 81),
        ("8, 612页", 612),
        ("2 v.", None),
        ("[8] p.", None),
        ("1 score (32 p.)", 32),
        ("XXVI, 351 p.", 351),
        ("", None),
    ],
)
def test_pages(extent: str, count: int | None) -> None:
    assert pages(extent) == count


@pytest.mark.parametrize(
    ("lccn", "normalised"),
    # the examples of LC's LCCN normalisation rules
    [
        ("n78-890351", "n78890351"),
        ("n78-89035", "n78089035"),
        ("n 78890351 ", "n78890351"),
        (" 85000002 ", "85000002"),
        ("85-2 ", "85000002"),
        ("2001-000002", "2001000002"),
        ("75-425165//r75", "75425165"),
        (" 79139101 /AC/r932", "79139101"),
    ],
)
def test_lccn(lccn: str, normalised: str) -> None:
    assert normalize_lccn(lccn) == normalised


def test_isbn_normalisation() -> None:
    assert normalize_isbn("0-19-853453-1 (pbk.)") == ("9780198534532", True)
    assert normalize_isbn("978-7-5053-9013-9") == ("9787505390139", False)  # bad check digit
    assert normalize_isbn("９７８７１１１５４７４２６") == ("9787111547426", True)  # full-width
    assert normalize_isbn("no number here") is None


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.sampled_from("0123456789X"))
def test_isbn10_check_agrees_with_stdnum(core: str, check: str) -> None:
    number = core + check
    hit = normalize_isbn(number)
    assert hit is not None
    assert hit[1] == stdisbn.is_valid(number)
    if hit[1]:
        assert hit[0] == stdisbn.to_isbn13(number)


@given(
    st.sampled_from(["978", "979", "977"]), st.text(alphabet="0123456789", min_size=10, max_size=10)
)
def test_isbn13_check_agrees_with_stdnum(prefix: str, rest: str) -> None:
    number = prefix + rest
    hit = normalize_isbn(number)
    assert hit is not None
    assert hit[1] == stdisbn.is_valid(number)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(pbk.)", "pbk"),
        ("hardcover", "hbk"),
        ("(v. 2)", "vol. 2"),
        ("(ebook)", "ebook"),
        ("精装", "hbk"),
        ("平装", "pbk"),
        ("第1卷", "vol. 1"),
        ("v. 1 : alk. paper", "vol. 1"),
        ("(alk. paper)", "alk. paper"),
    ],
)
def test_qualifier(text: str, expected: str) -> None:
    assert qualifier(text) == expected


@pytest.mark.parametrize(
    ("term", "expected"),
    [("edt", "editor"), ("340", "editor"), ("730", "translator"), ("070", "author"),
     ("editor.", "editor"), ("著", "author"), ("主编", "editor"), ("译", "translator"),
     ("编译", "translator")],
)  # fmt: skip
def test_role(term: str, expected: str) -> None:
    assert role(term) == expected


# ---------------------------------------------------------------------------------------------
# MARC21: real records


def test_lc_record_field_by_field() -> None:
    rec = norm(MARC / "loc-200.mrc", 1)  # LCCN 00000004
    assert rec.record_id == "00000004"
    assert rec.flavour == "marc21"
    assert rec.title == "Personal rights and the domestic relations"
    assert rec.responsibility == "by Charles E. Chadman"
    assert rec.names == [Name("Chadman, Charles E. (Charles Erehart)", "author", "person")]
    assert (rec.place, rec.publisher, rec.years) == ("Conneaut, OH", "Home Study Pub. Co.", [1899])
    assert (rec.extent, rec.pages) == ("xi, 186 p.", 186)
    assert rec.lccn == "00000004"
    assert rec.oclc == ["34987929"]
    assert rec.languages == ["eng"]
    assert rec.material == "book" and not rec.reproduction
    assert rec.subjects == ["Persons (Law)--United States", "Domestic relations--United States"]
    assert rec.classifications == [Classification("lcc", "KF505.Z9 C43")]
    assert (rec.series, rec.series_volume) == ("Home law school series", "[v. 1] no. 3")


def test_whole_lc_sample_normalises() -> None:
    recs = [normalize(r.record, r.flavour) for r in read_records(MARC / "loc-200.mrc")]  # type: ignore[union-attr]
    assert len(recs) == 200
    assert all(r.title for r in recs)
    assert all(r.lccn for r in recs)
    # 00000434 has 008 date type n (dates unknown) and a 260 without $c
    assert [r.record_id for r in recs if not r.years] == ["00000434"]
    assert all(not r.title.endswith((" /", " :", ";")) for r in recs)


def test_880_script_forms_from_marc8_eacc() -> None:
    rec = norm(MARC / "marc-perl_marc-charset__t__cjk3.marc")
    assert rec.title == "Lu Xun yu Zhe dong wen hua"
    assert rec.title_vernacular == "鲁 迅 与 浙东 文化"
    assert rec.names[0] == Name("Chen, Fangjing", "author", "person", "陈 方竞")
    assert rec.edition == "Di 1 ban" and rec.edition_number == 1
    assert rec.isbns == [Isbn("9787560123134")]
    assert rec.languages == ["chi"]


def test_880_in_utf8_record() -> None:
    ol = "openlibrary_openlibrary__catalog__marc__tests__test_data__bin_input__"
    rec = norm(MARC / f"{ol}880_alternate_script.mrc")
    assert rec.title_vernacular == "乔布斯的秘密日记"
    assert Name("Liu, Ning", "", "person", "刘宁") in rec.names
    assert rec.oclc == ["613515810"]


@pytest.mark.parametrize(
    ("suffix", "material"),
    [
        ("CD_Claudia.mrc", "sound"),
        ("DVD_Jorge_Mautner.mrc", "video"),
        ("MAP_2012_Enchanted_Circle.mrc", "map"),
        ("SCORE_Wiegenlied.mrc", "score"),
        ("SERIAL_IEEE_International_conference.mrc", "serial"),
        ("PHOTO_Srid_pa_ho.mrc", "other"),
    ],
)
def test_material_types_of_rda_samples(suffix: str, material: str) -> None:
    rec = norm(MARC / f"evergreen_Open-ILS__tests__datasets__RDA__RDA_record_{suffix}")
    assert rec.material == material


def test_print_book_with_a_007_for_its_digitised_copy_stays_a_book() -> None:
    # 006 m and 007 cr for the digitised copy, but 008/23 blank and "921 p. ; 19 cm.": print.
    rec = norm(MARC / "ruby-marc_test__utf8_multirecord.marc")
    assert rec.material == "book"
    assert rec.years == [1970, 1979]  # 008 type q: a range
    assert rec.languages == ["chi", "tha", "eng"]  # 008 then 041


def test_lc_records_with_a_computer_file_007() -> None:
    lc = MARC / "loc-007cr.mrc"
    digitised = norm(lc, 0)  # LC 00000017: 007 cr, 856 to the digitised copy, 008/23 blank
    assert (digitised.record_id, digitised.material) == ("00000017", "book")
    reproduced = norm(lc, 1)  # LC 00000087: 533 "Electronic reproduction" note on the print
    assert (reproduced.material, reproduced.reproduction) == ("book", True)
    electronic = norm(lc, 2)  # LC 00030077: 008/23 s
    assert electronic.material == "ebook"


PRINT_008 = "150302s2015    nyua     b    001 0 eng  "
ONLINE_008 = "150302s2015    nyua    ob    001 0 eng  "


@pytest.mark.parametrize(
    ("fields", "material"),
    [
        # RDA provider-neutral e-book: 008/23 o, 007 cr, 337 computer, 338 online resource
        (
            [
                Field(tag="007", data="cr |n|||||||||"),
                Field(tag="008", data=ONLINE_008),
                df("337", "acomputer", "bc", "2rdamedia"),
                df("338", "aonline resource", "bcr", "2rdacarrier"),
            ],
            "ebook",
        ),
        # 008/23 blank but the carrier says online and a 007 c agrees
        (
            [
                Field(tag="007", data="cr |n|||||||||"),
                Field(tag="008", data=PRINT_008),
                df("338", "aonline resource", "bcr", "2rdacarrier"),
            ],
            "ebook",
        ),
        # an electronic 006 and the media type
        (
            [
                Field(tag="006", data="m     o  d        "),
                Field(tag="008", data=PRINT_008),
                df("337", "acomputer", "bc", "2rdamedia"),
            ],
            "ebook",
        ),
        # print RDA record with LC's "cr" 007 for its digitised copy: unmediated volume
        (
            [
                Field(tag="007", data="cr |||||||||||"),
                Field(tag="008", data=PRINT_008),
                df("337", "aunmediated", "bn", "2rdamedia"),
                df("338", "avolume", "bnc", "2rdacarrier"),
            ],
            "book",
        ),
        # print record listing the e-book's ISBN too
        (
            [
                Field(tag="008", data=PRINT_008),
                df("020", "a9780198534532", "q(hardcover)"),
                df("020", "a9780191003134", "q(ebook)"),
            ],
            "book",
        ),
        # a 338 online resource alone, no 006/007: the 008 says print
        ([Field(tag="008", data=PRINT_008), df("338", "aonline resource", "bcr")], "book"),
    ],
)
def test_ebook_or_print_as_a_cataloguer_reads_it(fields: list[Field], material: str) -> None:
    rec = normalize(marc21(df("245", "aA book.", ind="00"), *fields), "marc21")
    assert rec.material == material


def test_marc21_identifiers_and_qualifiers() -> None:
    rec = normalize(
        marc21(
            df("010", "a   85-2 "),
            df("020", "a0198534531 (pbk.)"),
            df("020", "a9780198534532", "qhardcover"),
            df("020", "z0198534530"),
            df("020", "a9787111547426", "q(v. 2)"),
            df("022", "a0254-4164"),
            df("035", "a(OCoLC)ocm00012345"),
            df("035", "a(OCoLC)ocn987654321"),
            df("035", "a(CaOTULAS)159860611"),
            df("041", "aengfre", "hger", ind="1 "),
            df("084", "aTP311.1", "2clc"),
            df("082", "a005.13/3", ind="04"),
            df("245", "aTitle :", "bsubtitle /", "cby someone.", ind="10"),
            df("250", "aSecond edition."),
            df("533", "aMicrofilm."),
        ),
        "marc21",
    )
    assert rec.lccn == "85000002"
    assert rec.isbns == [
        Isbn("9780198534532", "pbk"),
        Isbn("9780198534532", "hbk"),
        Isbn("0198534530", "", valid=False),
        Isbn("9787111547426", "vol. 2"),
    ]
    assert rec.issns == ["0254-4164"]
    assert rec.oclc == ["12345", "987654321"]
    assert rec.system_numbers == ["(CaOTULAS)159860611"]
    assert rec.languages == ["eng", "fre"]
    assert Classification("clc", "TP311.1") in rec.classifications
    assert Classification("ddc", "005.133") in rec.classifications
    assert (rec.title, rec.remainder, rec.responsibility) == ("Title", "subtitle", "by someone")
    assert rec.edition_number == 2
    assert rec.reproduction


def test_imprint_years_and_ebook_qualifier() -> None:
    # A 008 with the form of item left as fill: the e-book ISBN qualifier decides.
    rec = normalize(
        marc21(
            Field(tag="008", data="980101s1998    xx      |     000 0 eng d"),
            df("020", "a9780198534532", "qebook"),
            df("245", "aT.", ind="00"),
            df("264", "a[Place of publication not identified] :", "bs.n.,", "c[2003?]", ind=" 1"),
            df("264", "c©1998", ind=" 4"),
        ),
        "marc21",
    )
    assert rec.material == "ebook"
    assert rec.place == "" and rec.publisher == ""
    assert rec.years == [1998, 2003]
    rec2 = normalize(
        marc21(df("245", "aT."), df("260", "aLondon :", "bX,", "c1995-1997.")), "marc21"
    )
    assert rec2.years == [1995, 1997]


def test_deleted_record() -> None:
    rec = normalize(marc21(df("245", "aGone"), leader="00000dam a2200000 a 4500"), "marc21")
    assert rec.deleted


# ---------------------------------------------------------------------------------------------
# UNIMARC / CNMARC: the built records, field by field


def test_cnmarc_translated_monograph() -> None:
    rec = norm(UNIMARC / "cnmarc-utf8.mrc", 0)
    assert rec.record_id == "012004002367"
    assert rec.flavour == "unimarc"
    assert rec.title == "计算机程序设计艺术"
    assert rec.title_pinyin == "ji suan ji cheng xu she ji yi shu"
    assert rec.remainder == "英文版影印"
    assert rec.part == "第1卷. 基本算法"
    assert rec.responsibility == "(美)高德纳著 ; 苏运霖译"
    assert rec.names == [
        Name("高德纳", "author", "person"),
        Name("苏运霖", "translator", "person"),
    ]
    assert (rec.place, rec.publisher, rec.years) == ("北京", "国防工业出版社", [2002])
    assert (rec.edition, rec.edition_number) == ("第3版", 3)
    assert (rec.extent, rec.pages) == ("625页", 625)
    assert rec.isbns == [
        Isbn("9787505390133", "hbk"),
        Isbn("9787111547426", "pbk"),
        Isbn("7111547420", "vol. 1", valid=False),
    ]
    assert rec.languages == ["chi"]
    assert rec.material == "book" and not rec.reproduction
    assert rec.subjects == ["程序设计--算法--中国--现代", "电子计算机--程序设计"]
    assert rec.classifications == [Classification("clc", "TP311.1")]
    assert (rec.series, rec.series_volume) == ("计算机科学丛书", "1")


def test_cnmarc_newer_record_with_214_and_codes() -> None:
    rec = norm(UNIMARC / "cnmarc-utf8.mrc", 1)
    assert rec.record_id == "CAL 012019088123"
    assert (rec.title, rec.remainder) == ("高等数学", "上册")
    assert (rec.edition, rec.edition_number) == ("第二版", 2)
    assert (rec.place, rec.publisher, rec.years) == ("北京", "高等教育出版社", [2018])
    assert rec.pages == 387
    assert rec.names == [
        Name("张三", "author", "person"),
        Name("同济大学. 数学系", "editor", "corporate"),
    ]
    assert rec.subjects == ["高等数学--高等学校--教材"]
    assert rec.classifications == [
        Classification("clc", "O13"),
        Classification("other", "51.3"),
        Classification("udc", "517"),
    ]


def test_cnmarc_deleted_reprint_and_serial() -> None:
    deleted = norm(UNIMARC / "cnmarc-utf8.mrc", 2)
    assert deleted.deleted
    assert deleted.reproduction  # 100 type of date e
    assert deleted.years == [2005, 1936]
    assert deleted.isbns == [Isbn("9787020050338", "pbk")]
    assert deleted.part == "第一卷"
    serial = norm(UNIMARC / "cnmarc-utf8.mrc", 3)
    assert serial.material == "serial"
    assert serial.issns == ["0254-4164"]
    assert serial.years == [1955]
    assert serial.names == [Name("中国计算机学会", "sponsor", "corporate")]


def test_gbk_and_xml_cnmarc_normalise_like_utf8() -> None:
    for i in range(4):
        utf8 = norm(UNIMARC / "cnmarc-utf8.mrc", i)
        assert norm(UNIMARC / "cnmarc-gbk.mrc", i) == utf8
        assert norm(UNIMARC / "cnmarc-utf8.xml", i) == utf8


def test_gb18030_record() -> None:
    rec = norm(UNIMARC / "cnmarc-gb18030.mrc")
    assert rec.title == "\U00020000字考"
    assert rec.isbns == [Isbn("9787532655441", "hbk")]


def test_italian_unimarc() -> None:
    rec = norm(MARC / "unimarcxml_test__data.mrc")
    assert rec.title == "Lo Stato innovatore"  # non-sort marks removed
    assert rec.names[0] == Name("Mazzucato, Mariana", "author", "person")
    assert rec.classifications == [Classification("ddc", "338.45")]
    assert (rec.series, rec.series_volume) == ("Anticorpi", "43")
    assert rec.languages == ["ita"]
