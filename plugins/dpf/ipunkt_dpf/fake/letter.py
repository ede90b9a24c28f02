"""A one-page PDF letter, for the fake municipality's replies.

SvarUt prints what it cannot deliver digitally, so a reply must carry a real PDF: a header, a
page tree, one page in Helvetica (WinAnsi, so Norwegian letters print), its content stream and
a cross-reference table whose offsets point at each object, as a PDF reader expects.
"""

from __future__ import annotations

from collections.abc import Sequence

PAGE = (595, 842)
"""A4 in points."""
MARGIN = 72
LEADING = 16
FONT_SIZE = 12


def _text(line: str) -> bytes:
    """A PDF string literal in WinAnsi (cp1252), with its delimiters escaped."""
    raw = line.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def letter_pdf(lines: Sequence[str]) -> bytes:
    """A valid single-page PDF showing ``lines`` from the top left."""
    width, height = PAGE
    content = b"BT /F1 %d Tf %d TL %d %d Td " % (FONT_SIZE, LEADING, MARGIN, height - MARGIN)
    content += b" T* ".join(_text(line) + b" Tj" for line in lines) + b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>" % (width, height),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
