"""A small static HTML page builder (on top of ``dominate``) for result pages.

Used by the training visualiser (``checkpoints/<name>/web/index.html``) and by
the results page (``results/<name>/<phase>_<epoch>/index.html``, ``display/results_page.py``).

All text is HTML-escaped by dominate. Image sources and link targets are file
names relative to the page; they are percent-encoded (so names containing
spaces, quotes, ``<``, ``#`` or ``?`` still resolve to the right file and can
never be read as a ``javascript:`` URL) and then attribute-escaped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import quote

import dominate
from dominate.tags import a, br, h3, img, meta, p, style, table, td, th, tr
from dominate.util import text as dom_text

from util.fileio import write_text

_CSS = """
body { font-family: sans-serif; }
table.images td { vertical-align: top; text-align: center; padding: 4px; word-wrap: break-word; }
table.metrics { border-collapse: collapse; margin: 8px 0; }
table.metrics th, table.metrics td { border: 1px solid #999; padding: 3px 8px; text-align: right; }
table.metrics th { background: #eee; }
"""


def relative_url(path: str) -> str:
    """Turn a path relative to the page into a safe relative URL.

    Backslashes are treated as separators, every character except ``/`` and
    the unreserved set is percent-encoded, so ``'a b".png'`` becomes
    ``'a%20b%22.png'`` and ``'javascript:x'`` becomes ``'javascript%3Ax'``.
    """
    return quote(path.replace(os.sep, "/"), safe="/")


def _format_cell(value: object) -> str:
    """Format one table cell: floats with 4 decimals, the rest via ``str``."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class HTML:
    """Build a static HTML page in ``web_dir`` with images stored in ``web_dir/images``.

    Typical use::

        page = HTML("checkpoints/exp/web", "Experiment name = exp", refresh=30)
        page.add_header("epoch [3]")
        page.add_images(["epoch003_fake_B.png"], ["fake_B"], ["epoch003_fake_B.png"], width=256)
        page.save()  # writes web_dir/index.html atomically
    """

    def __init__(self, web_dir: str, title: str, refresh: int = 0, extra_css: str = "") -> None:
        """Create the page (and the ``web_dir/images`` folder).

        Args:
            web_dir: folder that will hold ``index.html``.
            title: page title (escaped).
            refresh: if > 0, the page reloads itself every ``refresh`` seconds.
            extra_css: style rules added after the shared ones.
        """
        self.title = title
        self.web_dir = web_dir
        self.img_dir = os.path.join(web_dir, "images")
        os.makedirs(self.img_dir, exist_ok=True)
        self.doc = dominate.document(title=title)
        with self.doc.head:
            meta(charset="utf-8")
            style(_CSS + extra_css)
            if refresh > 0:
                meta(http_equiv="refresh", content=str(int(refresh)))

    def get_image_dir(self) -> str:
        """Return the folder where the page's images are expected."""
        return self.img_dir

    def add_header(self, text: str) -> None:
        """Append an ``<h3>`` header with the (escaped) text."""
        with self.doc:
            h3(text)

    def add_text(self, text: str) -> None:
        """Append a paragraph of (escaped) text."""
        with self.doc:
            p(text)

    def add_link(self, text: str, href: str, image: str | None = None, width: int = 0) -> None:
        """Append a link (``href`` relative to the page); optionally show ``image`` (relative) in it."""
        with self.doc:
            with p():
                with a(href=relative_url(href)):
                    if image is not None:
                        attrs = {"style": f"width:{int(width)}px"} if width > 0 else {}
                        img(src=relative_url(image), alt=text, **attrs)
                        br()
                    dom_text(text)

    def add_images(
        self,
        ims: Sequence[str],
        txts: Sequence[str],
        links: Sequence[str],
        width: int = 256,
        ncols: int = 0,
    ) -> None:
        """Append a table of images with captions.

        Args:
            ims: image paths relative to ``web_dir/images``.
            txts: captions, one per image (escaped).
            links: link targets relative to ``web_dir/images`` (usually the image itself).
            width: display width of each image in pixels.
            ncols: images per row; 0 puts them all on one row.
        """
        if not (len(ims) == len(txts) == len(links)):
            raise ValueError("ims, txts and links must have the same length")
        per_row = ncols if ncols > 0 else max(len(ims), 1)
        with self.doc:
            t = table(cls="images", border="1", style="table-layout: fixed;")
        for start in range(0, len(ims), per_row):
            row = t.add(tr())
            stop = start + per_row
            for im, txt, link in zip(ims[start:stop], txts[start:stop], links[start:stop]):
                with row.add(td(style="word-wrap: break-word;", halign="center", valign="top")):
                    with p():
                        with a(href=relative_url(os.path.join("images", link))):
                            img(style=f"width:{int(width)}px", src=relative_url(os.path.join("images", im)))
                        br()
                        dom_text(txt)

    def add_table(self, rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> None:
        """Append a plain table (e.g. metrics: one row per image or a mean row).

        Floats are shown with 4 decimals; every cell is escaped.
        """
        with self.doc:
            t = table(cls="metrics")
        if header:
            hr = t.add(tr())
            for h in header:
                hr.add(th(str(h)))
        for row in rows:
            r = t.add(tr())
            for value in row:
                r.add(td(_format_cell(value)))

    def render(self) -> str:
        """Return the page as an HTML string."""
        return self.doc.render()

    def save(self, filename: str = "index.html") -> str:
        """Write the page to ``web_dir/filename`` atomically; return the path."""
        os.makedirs(self.web_dir, exist_ok=True)
        path = os.path.join(self.web_dir, filename)
        write_text(path, self.render())
        return path
