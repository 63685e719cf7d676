"""Pages for print: the fonts they name and their PDF, one renderer for every report.

The custody report (access/custody_render.py) and the compliance report
(retention/report_html.py) are self-contained HTML pages (inline CSS and SVG,
no URL); their PDF is WeasyPrint's rendering of that HTML. Fonts come from
fontconfig: Chinese from Debian's fonts-wqy-microhei (or Noto Sans CJK), which
the Makefile installs. Nothing is fetched: the URL fetcher allows no protocol.
"""

from __future__ import annotations

FONTS = '"WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "DejaVu Sans", sans-serif'

# The page-number line of a printed page (CSS `content`), by language.
PAGE_NUMBERS = {
    "zh": '"第 " counter(page) " 页，共 " counter(pages) " 页"',
    "en": '"Page " counter(page) " of " counter(pages)',
}


def html_to_pdf(html: str) -> bytes:
    """The PDF of a self-contained page, rendered by WeasyPrint with no URL allowed."""
    # Imported here: WeasyPrint (and Pango under it) takes a while to load, and
    # only a PDF needs it.
    from weasyprint import HTML  # type: ignore[import-untyped]
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    return bytes(HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf())
