"""The demo consortium's union catalogue, loaded through the real ingest.

Two sources: 2,500 real Library of Congress records (BooksAll 2016, public domain, every 13th
record of the first part) and Chinese books written as CNMARC (UNIMARC with Chinese national
practice) from the format's field definitions, since no real CNMARC file is public. Each title
goes to one to five members (seeded), with the member's own record id, call number, barcode and
item status, so that clusters, holdings and routing have something real to work on.
"""

from __future__ import annotations

import gzip
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import pymarc
from pymarc import Field, Indicators, Record, Subfield

from consortia.accounts.roles import Principal
from consortia.catalog import service as catalog
from consortia.catalog.ingest import LoadSummary

DATA = Path(__file__).parent / "data"

# title, pinyin, author (role), publisher, place, year, CLC class, subject, pages
CHINESE_BOOKS: list[tuple[str, str, str, str, str, int, str, str, int]] = [
    (
        "中医药学概论",
        "zhong yi yao xue gai lun",
        "孟景春主编",
        "人民卫生出版社",
        "北京",
        2009,
        "R2",
        "中国医药学",
        412,
    ),
    (
        "黄帝内经素问校注",
        "huang di nei jing su wen jiao zhu",
        "郭霭春主编",
        "人民卫生出版社",
        "北京",
        2013,
        "R221",
        "内经",
        1128,
    ),
    (
        "伤寒论讲义",
        "shang han lun jiang yi",
        "李培生主编",
        "上海科学技术出版社",
        "上海",
        2012,
        "R222.2",
        "伤寒论",
        318,
    ),
    (
        "金匮要略",
        "jin gui yao lue",
        "张仲景著",
        "中国中医药出版社",
        "北京",
        2006,
        "R222.3",
        "金匮要略方论",
        124,
    ),
    (
        "中药学",
        "zhong yao xue",
        "高学敏主编",
        "中国中医药出版社",
        "北京",
        2007,
        "R28",
        "中药学",
        598,
    ),
    (
        "方剂学",
        "fang ji xue",
        "邓中甲主编",
        "中国中医药出版社",
        "北京",
        2003,
        "R289",
        "方剂学",
        470,
    ),
    (
        "针灸学",
        "zhen jiu xue",
        "石学敏主编",
        "中国中医药出版社",
        "北京",
        2007,
        "R245",
        "针灸学",
        402,
    ),
    (
        "中医诊断学",
        "zhong yi zhen duan xue",
        "朱文锋主编",
        "中国中医药出版社",
        "北京",
        2007,
        "R241",
        "中医诊断学",
        389,
    ),
    (
        "本草纲目",
        "ben cao gang mu",
        "李时珍著",
        "人民卫生出版社",
        "北京",
        2004,
        "R281.3",
        "本草",
        2035,
    ),
    (
        "温病学",
        "wen bing xue",
        "林培政主编",
        "中国中医药出版社",
        "北京",
        2008,
        "R254.2",
        "温病",
        296,
    ),
    (
        "中国医学史",
        "zhong guo yi xue shi",
        "甄志亚主编",
        "上海科学技术出版社",
        "上海",
        1997,
        "R-092",
        "医学史",
        320,
    ),
    (
        "中西医结合内科学",
        "zhong xi yi jie he nei ke xue",
        "陈志强主编",
        "中国中医药出版社",
        "北京",
        2008,
        "R5",
        "中西医结合",
        1020,
    ),
    (
        "红楼梦",
        "hong lou meng",
        "曹雪芹著",
        "人民文学出版社",
        "北京",
        2008,
        "I242.4",
        "章回小说",
        1606,
    ),
    (
        "三国演义",
        "san guo yan yi",
        "罗贯中著",
        "人民文学出版社",
        "北京",
        1998,
        "I242.4",
        "章回小说",
        1010,
    ),
    ("西游记", "xi you ji", "吴承恩著", "人民文学出版社", "北京", 2005, "I242.4", "章回小说", 1158),
    (
        "水浒传",
        "shui hu zhuan",
        "施耐庵著",
        "人民文学出版社",
        "北京",
        1997,
        "I242.4",
        "章回小说",
        1256,
    ),
    ("呐喊", "na han", "鲁迅著", "人民文学出版社", "北京", 2000, "I210.6", "短篇小说", 168),
    ("围城", "wei cheng", "钱钟书著", "人民文学出版社", "北京", 1991, "I246.5", "长篇小说", 359),
    ("边城", "bian cheng", "沈从文著", "北岳文艺出版社", "太原", 2002, "I246.5", "中篇小说", 226),
    ("活着", "huo zhe", "余华著", "作家出版社", "北京", 2012, "I247.5", "长篇小说", 191),
    (
        "平凡的世界",
        "ping fan de shi jie",
        "路遥著",
        "北京十月文艺出版社",
        "北京",
        2012,
        "I247.5",
        "长篇小说",
        1263,
    ),
    (
        "乡土中国",
        "xiang tu zhong guo",
        "费孝通著",
        "北京大学出版社",
        "北京",
        2012,
        "C912.82",
        "农村社会学",
        160,
    ),
    (
        "中国哲学简史",
        "zhong guo zhe xue jian shi",
        "冯友兰著",
        "北京大学出版社",
        "北京",
        2013,
        "B2",
        "哲学史",
        390,
    ),
    (
        "万历十五年",
        "wan li shi wu nian",
        "黄仁宇著",
        "生活·读书·新知三联书店",
        "北京",
        1997,
        "K248.306",
        "明代史",
        282,
    ),
    ("史记", "shi ji", "司马迁著", "中华书局", "北京", 1982, "K204.2", "纪传体", 3322),
    (
        "资治通鉴",
        "zi zhi tong jian",
        "司马光编著",
        "中华书局",
        "北京",
        2011,
        "K204.3",
        "编年体",
        9670,
    ),
    ("论语译注", "lun yu yi zhu", "杨伯峻译注", "中华书局", "北京", 2009, "B222.2", "儒家", 318),
    ("孟子译注", "meng zi yi zhu", "杨伯峻译注", "中华书局", "北京", 2010, "B222.5", "儒家", 372),
    (
        "老子今注今译",
        "lao zi jin zhu jin yi",
        "陈鼓应注译",
        "商务印书馆",
        "北京",
        2003,
        "B223.1",
        "道家",
        371,
    ),
    ("中国通史", "zhong guo tong shi", "范文澜著", "人民出版社", "北京", 2008, "K20", "通史", 2760),
    (
        "图书馆学基础",
        "tu shu guan xue ji chu",
        "吴慰慈主编",
        "高等教育出版社",
        "北京",
        2004,
        "G250",
        "图书馆学",
        387,
    ),
    (
        "信息资源共享",
        "xin xi zi yuan gong xiang",
        "程焕文著",
        "高等教育出版社",
        "北京",
        2004,
        "G252",
        "资源共享",
        326,
    ),
    (
        "文献编目",
        "wen xian bian mu",
        "段明莲主编",
        "北京大学出版社",
        "北京",
        2002,
        "G254.3",
        "文献编目",
        310,
    ),
    (
        "中国图书馆分类法",
        "zhong guo tu shu guan fen lei fa",
        "国家图书馆编",
        "国家图书馆出版社",
        "北京",
        2010,
        "G254.122",
        "图书分类法",
        1212,
    ),
    (
        "高等数学",
        "gao deng shu xue",
        "同济大学数学系编",
        "高等教育出版社",
        "北京",
        2014,
        "O13",
        "高等数学",
        412,
    ),
    (
        "线性代数",
        "xian xing dai shu",
        "同济大学数学系编",
        "高等教育出版社",
        "北京",
        2014,
        "O151.2",
        "线性代数",
        186,
    ),
    (
        "概率论与数理统计",
        "gai lü lun yu shu li tong ji",
        "盛骤编",
        "高等教育出版社",
        "北京",
        2008,
        "O21",
        "概率论",
        410,
    ),
    (
        "大学物理学",
        "da xue wu li xue",
        "张三慧编著",
        "清华大学出版社",
        "北京",
        2009,
        "O4",
        "物理学",
        540,
    ),
    (
        "有机化学",
        "you ji hua xue",
        "邢其毅编",
        "高等教育出版社",
        "北京",
        2005,
        "O62",
        "有机化学",
        860,
    ),
    (
        "细胞生物学",
        "xi bao sheng wu xue",
        "翟中和主编",
        "高等教育出版社",
        "北京",
        2011,
        "Q2",
        "细胞生物学",
        520,
    ),
    (
        "经济学原理",
        "jing ji xue yuan li",
        "曼昆著",
        "北京大学出版社",
        "北京",
        2015,
        "F0",
        "经济学",
        802,
    ),
    ("管理学", "guan li xue", "周三多主编", "复旦大学出版社", "上海", 2014, "C93", "管理学", 430),
    (
        "岭南文化",
        "ling nan wen hua",
        "李权时主编",
        "广东人民出版社",
        "广州",
        2010,
        "K296.5",
        "岭南",
        520,
    ),
    (
        "广州史话",
        "guang zhou shi hua",
        "广州市地方志办公室编",
        "广东人民出版社",
        "广州",
        2008,
        "K296.51",
        "广州",
        300,
    ),
    (
        "粤语与文化研究",
        "yue yu yu wen hua yan jiu",
        "詹伯慧著",
        "暨南大学出版社",
        "广州",
        2002,
        "H178",
        "粤语",
        280,
    ),
    (
        "深圳改革开放史",
        "shen zhen gai ge kai fang shi",
        "深圳市史志办公室编",
        "人民出版社",
        "北京",
        2010,
        "D619.653",
        "改革开放",
        416,
    ),
    (
        "吉林通史",
        "ji lin tong shi",
        "佟冬主编",
        "吉林人民出版社",
        "长春",
        2008,
        "K293.4",
        "吉林",
        900,
    ),
    (
        "中医养生学",
        "zhong yi yang sheng xue",
        "马烈光主编",
        "中国中医药出版社",
        "北京",
        2012,
        "R212",
        "养生",
        280,
    ),
    (
        "中醫藥學概論",
        "zhong yi yao xue gai lun",
        "孟景春主編",
        "知音出版社",
        "臺北",
        2000,
        "R2",
        "中國醫藥學",
        420,
    ),
    ("推拿学", "tui na xue", "严隽陶主编", "中国中医药出版社", "北京", 2009, "R244.1", "推拿", 310),
]


def _isbn13(seed: str) -> str:
    """A well-formed ISBN-13 in the Chinese group (978-7) for a demo title."""
    rnd = random.Random(seed)
    body = "9787" + "".join(str(rnd.randrange(10)) for _ in range(8))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _f100(year: int) -> str:
    value = f"20100101d{year:04d}    km y0chiy50      ea"
    return value[:36].ljust(36)


def cnmarc_record(
    book: tuple[str, str, str, str, str, int, str, str, int],
    record_id: str,
    call_number: str,
    barcode: str,
    status: str,
    branch: str,
) -> Record:
    title, pinyin, author, publisher, place, year, clc, subject, pages = book
    rec = Record(force_utf8=True, leader="     nam0 22        450 ")
    person, role = author, "著"
    for suffix in ("主编", "主編", "编著", "译注", "注译", "编", "著"):
        if author.endswith(suffix):
            person, role = author.removesuffix(suffix), suffix
            break
    rec.add_field(Field(tag="001", data=record_id))
    rec.add_field(
        Field(
            tag="010",
            indicators=Indicators(" ", " "),
            subfields=[
                Subfield("a", _isbn13(title + publisher + str(year))),
                Subfield("d", "CNY48.00"),
            ],
        )
    )
    rec.add_field(
        Field(tag="100", indicators=Indicators(" ", " "), subfields=[Subfield("a", _f100(year))])
    )
    rec.add_field(
        Field(tag="101", indicators=Indicators("0", " "), subfields=[Subfield("a", "chi")])
    )
    rec.add_field(
        Field(
            tag="200",
            indicators=Indicators("1", " "),
            subfields=[Subfield("a", title), Subfield("9", pinyin), Subfield("f", author)],
        )
    )
    rec.add_field(
        Field(
            tag="210",
            indicators=Indicators(" ", " "),
            subfields=[Subfield("a", place), Subfield("c", publisher), Subfield("d", str(year))],
        )
    )
    rec.add_field(
        Field(
            tag="215",
            indicators=Indicators(" ", " "),
            subfields=[Subfield("a", f"{pages}页"), Subfield("d", "26cm")],
        )
    )
    rec.add_field(
        Field(tag="606", indicators=Indicators("0", " "), subfields=[Subfield("a", subject)])
    )
    rec.add_field(
        Field(
            tag="690",
            indicators=Indicators(" ", " "),
            subfields=[Subfield("a", clc), Subfield("v", "5")],
        )
    )
    rec.add_field(
        Field(
            tag="701",
            indicators=Indicators(" ", "0"),
            subfields=[Subfield("a", person), Subfield("4", role)],
        )
    )
    rec.add_field(
        Field(
            tag="801",
            indicators=Indicators(" ", "0"),
            subfields=[Subfield("a", "CN"), Subfield("b", branch)],
        )
    )
    rec.add_field(
        Field(
            tag="995",
            indicators=Indicators(" ", " "),
            subfields=[Subfield("b", branch), Subfield("f", barcode), Subfield("k", call_number)]
            + ([Subfield("n", "2026-12-20")] if status == "on_loan" else []),
        )
    )
    return rec


def build_member_files(codes: list[str], folder: Path, seed: int = 2016) -> dict[str, list[Path]]:
    """Each member's MARC21 (from LC) and CNMARC files, with overlapping holdings."""
    rnd = random.Random(seed)
    marc21: dict[str, list[bytes]] = {c: [] for c in codes}
    with gzip.open(DATA / "loc-sample.mrc.gz", "rb") as fh:
        for i, rec in enumerate(pymarc.MARCReader(cast(BinaryIO, fh))):
            if rec is None:
                continue
            holders = rnd.sample(codes, k=min(len(codes), rnd.choice((1, 1, 2, 2, 3, 4))))
            for code in holders:
                copy = Record(leader=rec.leader, fields=list(rec.fields))
                copy.remove_fields("852")
                status = "on_loan" if rnd.random() < 0.15 else ""
                copy.add_field(
                    Field(
                        tag="852",
                        indicators=Indicators(" ", " "),
                        subfields=[
                            Subfield("a", code),
                            Subfield("b", "Stacks"),
                            Subfield("h", f"{rnd.choice('ABDEGHKNPQR')}{rnd.randrange(1, 999)}"),
                            Subfield("p", f"{code[3:]}{i:07d}"),
                        ],
                    )
                )
                if status:
                    copy.add_field(
                        Field(
                            tag="952",
                            indicators=Indicators(" ", " "),
                            subfields=[
                                Subfield("a", code),
                                Subfield("p", f"{code[3:]}L{i:06d}"),
                                Subfield("q", "2026-12-20"),
                            ],
                        )
                    )
                marc21[code].append(copy.as_marc())
    cnmarc: dict[str, list[bytes]] = {c: [] for c in codes}
    for i, book in enumerate(CHINESE_BOOKS):
        holders = rnd.sample(codes, k=min(len(codes), rnd.choice((2, 3, 4, 5))))
        for code in holders:
            status = "on_loan" if rnd.random() < 0.2 else "available"
            rec = cnmarc_record(
                book,
                f"{code[3:].lower()}-zh{i:04d}",
                f"{book[6]}/{i + 1}",
                f"{code[3:]}Z{i:05d}",
                status,
                code,
            )
            cnmarc[code].append(rec.as_marc())
    out: dict[str, list[Path]] = {}
    for code in codes:
        files = []
        for name, recs in (("marc21", marc21[code]), ("cnmarc", cnmarc[code])):
            if recs:
                path = folder / f"{code}-{name}.mrc"
                path.write_bytes(b"".join(recs))
                files.append(path)
        out[code] = files
    return out


def load_demo_catalogue(
    actor: Principal, codes: list[str], report: Callable[[str, LoadSummary], None] | None = None
) -> int:
    """Load every member's files through the catalogue service; returns records loaded."""
    total = 0
    with tempfile.TemporaryDirectory(prefix="consortia-demo-") as tmp:
        files = build_member_files(codes, Path(tmp))
        for code, paths in files.items():
            summary = catalog.load_files(actor, code, paths, workers=1)
            total += summary.added
            if report:
                report(code, summary)
    return total
