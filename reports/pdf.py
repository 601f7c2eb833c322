"""HTML to PDF with WeasyPrint. Reports carry everything inline (CSS in <style>, charts as data: images),
so no base URL is needed and nothing is fetched: a report can never make the server request a URL."""
from __future__ import annotations


def render(html: str) -> bytes:
    """The PDF of one self-contained HTML document."""
    # Imported here: WeasyPrint (and Pango behind it) takes about a second to load, which every
    # process that never renders a PDF (workers, the gateway, management commands) should not pay.
    import weasyprint
    from weasyprint.urls import URLFetcher

    # data: URIs only (the charts); a file: or http: reference in a report's text is never followed.
    fetcher = URLFetcher(allowed_protocols={"data"})
    return weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
