"""Build the CNMARC (UNIMARC, Chinese national practice) test records in this folder.

No real CNMARC file is public, so these records are written from the field definitions of the
format (CNMARC / UNIMARC Bibliographic): leader, 001, 005, 010 ISBN ($a $b qualifier $d price),
011 ISSN, 100 general processing data (36 fixed positions), 101 language, 102 country,
105 coded data (books), 106 form, 200 title and responsibility ($a $9 pinyin $e $f $g $h $i),
205 edition, 210 / 214 publication, 215 physical description, 225 series ($a $v), 410 series
link (embedded 200), 606 topical subject ($a $x $y $z), 690 Chinese Library Classification,
686 other classification, 675 UDC, 700-702 persons ($a $b $4), 710-712 corporate bodies,
801 record source.

Run ``python tests/data/unimarc/build.py`` to rewrite the files; tests check that the files in
the repository are exactly what this script writes.

Files: cnmarc-utf8.mrc (UTF-8, 100$a/26-27 "50"), cnmarc-gbk.mrc (the same records in GBK with
a blank leader/09), cnmarc-gb18030.mrc (one record with a character outside GBK, four bytes in
GB 18030), cnmarc-utf8.xml (the UTF-8 records as MARCXML).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).parent

# A record: (leader/05-09 and 17-19 pieces, list of fields). A field is (tag, data) for control
# fields or (tag, indicators, [(code, value), ...]).
Field = tuple[str, str] | tuple[str, str, list[tuple[str, str]]]


def f100(
    entered: str, date_type: str, date1: str, date2: str = "    ", charset: str = "50  "
) -> str:
    """100$a, 36 positions: 0-7 date entered, 8 type of date, 9-12 date 1, 13-16 date 2,
    17-19 target audience, 20 government publication, 21 modified record, 22-24 language of
    cataloguing, 25 transliteration, 26-29 character sets, 30-33 additional sets, 34-35 script."""
    value = f"{entered}{date_type}{date1}{date2}km y0chiy{charset}    ea"
    assert len(value) == 36, (len(value), value)
    return value


RECORDS: list[tuple[str, list[Field]]] = [
    # 1. a translated monograph, one volume of a set, with two ISBNs and full ISBD punctuation
    #    left in the subfields the way some Chinese systems export it
    (
        "nam0",
        [
            ("001", "012004002367"),
            ("005", "20040223105436.6"),
            ("010", "  ", [("a", "7-5053-9013-9"), ("b", "精装"), ("d", "CNY79.00")]),
            ("010", "  ", [("a", "978-7-111-54742-6"), ("b", "平装"), ("d", "CNY59.00")]),
            ("010", "  ", [("z", "7-111-54742-0"), ("b", "第1卷")]),
            ("100", "  ", [("a", f100("20040223", "d", "2002"))]),
            ("101", "1 ", [("a", "chi"), ("c", "eng")]),
            ("102", "  ", [("a", "CN"), ("b", "110000")]),
            ("105", "  ", [("a", "a   z   000yy")]),
            ("106", "  ", [("a", "r")]),
            (
                "200",
                "1 ",
                [
                    ("a", "计算机程序设计艺术"),
                    ("9", "ji suan ji cheng xu she ji yi shu"),
                    ("h", "第1卷"),
                    ("i", "基本算法："),
                    ("e", "英文版影印／"),
                    ("f", "(美)高德纳著"),
                    ("g", "苏运霖译"),
                ],
            ),
            ("205", "  ", [("a", "第3版")]),
            ("210", "  ", [("a", "北京"), ("c", "国防工业出版社"), ("d", "2002")]),
            ("215", "  ", [("a", "625页"), ("c", "图"), ("d", "26cm")]),
            ("225", "2 ", [("a", "计算机科学丛书"), ("v", "1")]),
            ("410", " 0", [("1", "2001 "), ("a", "计算机科学丛书")]),
            ("606", "0 ", [("a", "程序设计"), ("x", "算法"), ("y", "中国"), ("z", "现代")]),
            ("606", "0 ", [("a", "电子计算机"), ("x", "程序设计")]),
            ("690", "  ", [("a", "TP311.1"), ("v", "4")]),
            ("701", " 0", [("a", "高德纳"), ("9", "gao de na"), ("4", "著")]),
            ("702", " 0", [("a", "苏运霖"), ("9", "su yun lin"), ("4", "译")]),
            ("801", " 0", [("a", "CN"), ("b", "北京图书馆"), ("c", "20040223")]),
        ],
    ),
    # 2. a newer record: 214 instead of 210, relator codes, corporate author, UDC and other
    #    classification, second edition in Chinese numerals
    (
        "cam0",
        [
            ("001", "CAL 012019088123"),
            ("005", "20190301093000.0"),
            ("010", "  ", [("a", "9787040494839"), ("d", "CNY45.00")]),
            ("100", "  ", [("a", f100("20190301", "d", "2018"))]),
            ("101", "0 ", [("a", "chi")]),
            (
                "200",
                "1 ",
                [
                    ("a", "高等数学"),
                    ("A", "gao deng shu xue"),
                    ("e", "上册"),
                    ("f", "同济大学数学系编"),
                ],
            ),
            ("205", "  ", [("a", "第二版")]),
            ("214", " 0", [("a", "北京"), ("c", "高等教育出版社"), ("d", "2018.7")]),
            ("215", "  ", [("a", "xii, 387页"), ("d", "24cm")]),
            ("606", "0 ", [("a", "高等数学"), ("j", "高等学校"), ("j", "教材")]),
            ("675", "  ", [("a", "517"), ("v", "ed. 1993")]),
            ("686", "  ", [("a", "O13"), ("2", "clc")]),
            ("686", "  ", [("a", "51.3"), ("2", "kktb")]),
            ("690", "  ", [("a", "O13"), ("v", "5")]),
            ("710", "02", [("a", "同济大学"), ("b", "数学系"), ("4", "340")]),
            ("701", " 0", [("a", "张"), ("b", "三"), ("4", "070")]),
            ("801", " 0", [("a", "CN"), ("b", "CAL"), ("c", "20190301")]),
        ],
    ),
    # 3. a deleted record (leader/05 d) of a reprint (100 type of date e: date 1 reprint,
    #    date 2 original)
    (
        "dam0",
        [
            ("001", "012005000111"),
            ("010", "  ", [("a", "7-02-005033-6"), ("b", "平装")]),
            ("100", "  ", [("a", f100("20050101", "e", "2005", "1936"))]),
            ("101", "0 ", [("a", "chi")]),
            ("200", "1 ", [("a", "鲁迅全集"), ("h", "第一卷"), ("f", "鲁迅著")]),
            ("210", "  ", [("a", "北京"), ("c", "人民文学出版社"), ("d", "2005")]),
            ("215", "  ", [("a", "8, 612页")]),
            ("690", "  ", [("a", "I210.1")]),
            ("700", " 0", [("a", "鲁迅"), ("f", "1881-1936"), ("4", "著")]),
        ],
    ),
    # 4. a serial
    (
        "nas0",
        [
            ("001", "012010000042"),
            ("011", "  ", [("a", "0254-4164"), ("d", "CNY20.00")]),
            ("100", "  ", [("a", f100("20100115", "a", "1955", "9999"))]),
            ("101", "0 ", [("a", "chi")]),
            ("200", "1 ", [("a", "计算机学报"), ("f", "中国计算机学会主办")]),
            ("210", "  ", [("a", "北京"), ("c", "科学出版社"), ("d", "1955-")]),
            ("690", "  ", [("a", "TP3")]),
            ("712", "02", [("a", "中国计算机学会"), ("4", "主办")]),
        ],
    ),
]

# one record whose title has a character outside GBK (U+20000, four bytes in GB 18030)
GB18030_ONLY: tuple[str, list[Field]] = (
    "nam0",
    [
        ("001", "012020000007"),
        ("010", "  ", [("a", "978-7-5326-5544-1"), ("b", "精装")]),
        ("100", "  ", [("a", f100("20200601", "d", "2020", charset="    "))]),
        ("101", "0 ", [("a", "chi")]),
        ("200", "1 ", [("a", "𠀀字考"), ("f", "王力著")]),
        ("210", "  ", [("a", "上海"), ("c", "上海辞书出版社"), ("d", "2020")]),
        ("215", "  ", [("a", "300页")]),
        ("701", " 0", [("a", "王力"), ("4", "著")]),
    ],
)


def iso2709(pieces: str, fields: list[Field], encoding: str, utf8_flag: bool) -> bytes:
    """One ISO 2709 record: leader, directory (3+4+5), fields, terminators."""
    data = b""
    directory = b""
    for fld in fields:
        if len(fld) == 2:
            body = fld[1].encode(encoding)
        else:
            _tag, ind, subs = fld
            body = ind.encode("ascii") + b"".join(
                b"\x1f" + c.encode("ascii") + v.encode(encoding) for c, v in subs
            )
        body += b"\x1e"
        directory += fld[0].encode("ascii") + b"%04d%05d" % (len(body), len(data))
        data += body
    directory += b"\x1e"
    base = 24 + len(directory)
    length = base + len(data) + 1
    status, rtype, level, hier = pieces
    leader = (
        f"{length:05d}{status}{rtype}{level}{hier}{'a' if utf8_flag else ' '}22{base:05d} i 450 "
    )
    assert len(leader) == 24
    return leader.encode("ascii") + directory + data + b"\x1d"


def marcxml(records: list[tuple[str, list[Field]]]) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<collection xmlns="http://www.loc.gov/MARC21/slim">',
    ]
    for pieces, fields in records:
        raw = iso2709(pieces, fields, "utf-8", True)
        out.append("  <record>")
        out.append(f"    <leader>{raw[:24].decode('ascii')}</leader>")
        for fld in fields:
            if len(fld) == 2:
                out.append(
                    f"    <controlfield tag={quoteattr(fld[0])}>{escape(fld[1])}</controlfield>"
                )
                continue
            tag, ind, subs = fld
            out.append(f'    <datafield tag="{tag}" ind1="{ind[0]}" ind2="{ind[1]}">')
            for c, v in subs:
                out.append(f'      <subfield code="{c}">{escape(v)}</subfield>')
            out.append("    </datafield>")
        out.append("  </record>")
    out.append("</collection>")
    return ("\n".join(out) + "\n").encode("utf-8")


def gbk_fields(fields: list[Field]) -> list[Field]:
    """The same fields with 100$a/26-29 not saying Unicode (GBK has no UNIMARC code)."""
    out: list[Field] = []
    for fld in fields:
        if fld[0] == "100" and len(fld) == 3:
            a = fld[2][0][1]
            out.append(("100", "  ", [("a", a[:26] + "    " + a[30:])]))
        else:
            out.append(fld)
    return out


def build() -> dict[str, bytes]:
    return {
        "cnmarc-utf8.mrc": b"".join(iso2709(p, f, "utf-8", False) for p, f in RECORDS),
        "cnmarc-gbk.mrc": b"".join(iso2709(p, gbk_fields(f), "gbk", False) for p, f in RECORDS),
        "cnmarc-gb18030.mrc": iso2709(GB18030_ONLY[0], GB18030_ONLY[1], "gb18030", False),
        "cnmarc-utf8.xml": marcxml(RECORDS),
    }


if __name__ == "__main__":
    for name, content in build().items():
        (HERE / name).write_bytes(content)
        print(f"{name}: {len(content)} bytes")
