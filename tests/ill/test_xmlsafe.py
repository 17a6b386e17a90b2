"""The hardened XML parser refuses what could hurt us and reads everything else."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from consortia.ill.xmlsafe import MAX_BYTES, XmlRejected, parse_bytes, safe_parser

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def rejected(data: bytes, **kw: int) -> XmlRejected:
    with pytest.raises(XmlRejected) as info:
        parse_bytes(data, **kw)
    return info.value


def test_a_plain_document_is_read() -> None:
    root = parse_bytes("<a x='1'><b>中文</b></a>".encode())
    assert root.tag == "a" and root.get("x") == "1" and root.findtext("b") == "中文"


def test_declared_encodings_are_honoured() -> None:
    data = '<?xml version="1.0" encoding="GB18030"?><a>馆际互借</a>'.encode("gb18030")
    assert parse_bytes(data).text == "馆际互借"


def test_comments_and_processing_instructions_are_dropped() -> None:
    root = parse_bytes(b"<a><!-- hidden --><?php echo 1; ?><b/></a>")
    assert [c.tag for c in root] == ["b"]


def test_billion_laughs_is_refused_quickly() -> None:
    start = time.perf_counter()
    err = rejected(BILLION_LAUGHS)
    assert err.reason == "doctype"
    assert time.perf_counter() - start < 1.0


def test_a_doctype_in_utf16_is_refused_too() -> None:
    # The literal byte check cannot see it; the parsed document's docinfo must.
    assert rejected("<!DOCTYPE a><a/>".encode("utf-16")).reason == "doctype"
    # libxml2 itself stops the expansion here (amplification limit): refused all the same.
    start = time.perf_counter()
    assert rejected(BILLION_LAUGHS.decode().encode("utf-16")).reason in {"doctype", "syntax"}
    assert time.perf_counter() - start < 1.0


def test_external_entities_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'
    ).encode()
    err = rejected(data)
    assert err.reason == "doctype" and "TOP-SECRET" not in str(err)
    # Even the bare parser (without the DOCTYPE refusal) does not read the file.
    root = etree.fromstring(data, safe_parser())
    assert "TOP-SECRET" not in etree.tostring(root).decode()


def test_no_network_fetch_for_an_external_dtd() -> None:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY x "pwned">')

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/evil.dtd"
        data = f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}"><r>&x;</r>'.encode()
        assert rejected(data).reason in {"doctype", "syntax"}
        # Even the bare parser leaves &x; unexpanded: the DTD was not fetched.
        assert "pwned" not in etree.tostring(etree.fromstring(data, safe_parser())).decode()
        data = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>'
        rejected(data.encode())
        # The bare parser refuses to fetch the parameter entity.
        with pytest.raises(etree.XMLSyntaxError, match="network"):
            etree.fromstring(data.encode(), safe_parser())
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []


def test_too_large_is_refused_before_parsing() -> None:
    big = b"<a>" + b"x" * (10 * 1024 * 1024) + b"</a>"
    start = time.perf_counter()
    err = rejected(big)
    assert err.reason == "too_large" and str(MAX_BYTES) in str(err)
    assert time.perf_counter() - start < 0.5
    # The limit is the caller's to raise for bigger documents (e.g. MARCXML files).
    many = b"<a>" + b"<b>x</b>" * 1_400_000 + b"</a>"
    assert len(many) > 10 * 1024 * 1024
    assert rejected(many).reason == "too_large"
    assert len(parse_bytes(many, max_bytes=12 * 1024 * 1024)) == 1_400_000
    assert rejected(b"<a>12345</a>", max_bytes=5).reason == "too_large"


def test_deep_nesting_is_refused() -> None:
    deep = b"<a>" * 10_000 + b"</a>" * 10_000
    assert rejected(deep).reason == "syntax"


@pytest.mark.parametrize(
    "data", [b"", b"   ", b"not xml", b"<a>", b"<a></b>", b"\xff\xfe\x00", b"<a>&undefined;</a>"]
)
def test_not_well_formed_is_refused_with_a_reason(data: bytes) -> None:
    err = rejected(data)
    assert err.reason in {"empty", "syntax"}
    assert err.status == 422 and str(err)


def test_only_bytes_are_accepted() -> None:
    assert rejected("<a/>").reason == "not_bytes"  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_give_an_element_or_xml_rejected(data: bytes) -> None:
    try:
        root = parse_bytes(data)
    except XmlRejected:
        return
    assert isinstance(root.tag, str)
