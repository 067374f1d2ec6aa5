import codecs

from pipeline.extract.decode import decode_html, looks_binary, looks_like_html, normalise_charset

JAPANESE = "日本語のページです。ひらがなとカタカナ。"


def test_http_header_charset_is_used():
    text, name = decode_html(JAPANESE.encode("euc_jp"), http_charset="EUC-JP")
    assert text == JAPANESE
    assert name.startswith("euc")


def test_warc_identified_charset_then_meta():
    body = f'<meta charset="shift_jis"><p>{JAPANESE}</p>'.encode("cp932")
    assert JAPANESE in decode_html(body)[0]                       # <meta>
    assert JAPANESE in decode_html(body, warc_charset="Shift_JIS")[0]


def test_wrong_label_that_cannot_decode_falls_through():
    body = f"<p>{JAPANESE}</p>".encode("euc_jp")
    text, _ = decode_html(body, http_charset="utf-8", warc_charset="EUC-JP")
    assert JAPANESE in text


def test_valid_utf8_beats_a_latin1_server_default():
    body = "<p>Grüße, naïve café</p>".encode("utf-8")
    assert "Grüße, naïve café" in decode_html(body, http_charset="ISO-8859-1")[0]


def test_bom_wins():
    body = codecs.BOM_UTF16_LE + "<p>hé</p>".encode("utf-16-le")
    assert decode_html(body, http_charset="iso-8859-1")[0] == "<p>hé</p>"


def test_latin1_label_reads_as_windows_1252():
    assert normalise_charset("ISO-8859-1") == "cp1252"
    assert decode_html(b"<p>\x93quoted\x94</p>", http_charset="iso-8859-1")[0] == "<p>\u201cquoted\u201d</p>"


def test_detection_without_any_label():
    body = ("<html><body><p>" + "Большой текст на русском языке, без указания кодировки. " * 20 + "</p>").encode("cp1251")
    assert "Большой текст" in decode_html(body)[0]


def test_sniffing():
    assert looks_like_html(b"  <!DOCTYPE html><html>")
    assert not looks_like_html(b"\x89PNG\r\n\x1a\n....")
    assert looks_binary(b"\xff\xd8\xff\xe0JFIF")
    assert looks_binary(b"<html>\x00\x00")
    assert not looks_binary(codecs.BOM_UTF16_LE + "<html>".encode("utf-16-le"))
