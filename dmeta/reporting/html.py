"""A static, self-contained HTML page: inline CSS, figures as data URIs and PNG files.

The page needs no server and fetches nothing: every figure is embedded in the page (so the
one file can be mailed or attached to a preprint) and also written next to it as a PNG
(so a figure can be dropped into a paper), linked from its caption.
"""

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from dmeta.reporting import figures

FIGURE_DIR = "figures"
MAX_TABLE_ROWS = 200

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 1.5em 3em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
nav ul { columns: 2; list-style: none; padding: 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; }
.table { overflow-x: auto; max-height: 32em; overflow-y: auto; margin: .5em 0 1.5em; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
code { background: #f3f3f3; padding: 0 .2em; word-break: break-all; }
.note { color: #666; font-style: italic; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
"""


def escape(text):
    return html.escape(str(text), quote=True)


def slug(text):
    """A file and anchor name from a map or table name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")


@dataclass
class Page:
    """Sections of a report, with figures saved as they are added.

    Parameters
    ----------
    out_dir : Path
        The report folder; figures go to ``out_dir / "figures"``.
    title : str
    """

    out_dir: Path
    title: str
    sections: list = field(default_factory=list)
    figure_files: list = field(default_factory=list)

    def figure(self, name, fig, caption):
        """Save ``fig`` as ``figures/<name>.png`` and return its embedded ``<figure>``."""
        data = figures.png(fig)
        fig.clear()
        relative = f"{FIGURE_DIR}/{slug(name)}.png"
        path = self.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.figure_files.append(path)
        encoded = base64.b64encode(data).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{escape(caption)}">'
                f'<figcaption>{escape(caption)} <a href="{relative}">PNG</a></figcaption>'
                "</figure>")

    def add_section(self, title, body):
        """Append a section (``body`` is HTML); empty bodies are left out."""
        if body:
            self.sections.append((title, body))

    def render(self):
        """The whole page as a string."""
        nav = "".join(f'<li><a href="#{slug(t)}">{escape(t)}</a></li>'
                      for t, _ in self.sections)
        body = "".join(f'<section id="{slug(t)}"><h2>{escape(t)}</h2>{b}</section>'
                       for t, b in self.sections)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{escape(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<h1>{escape(self.title)}</h1><nav><ul>{nav}</ul></nav>{body}</body></html>\n")


def table(frame, caption=None):
    """A DataFrame as an HTML table in a scrolling box (first rows only if it is long)."""
    note = ""
    if len(frame) > MAX_TABLE_ROWS:
        note = (f'<p class="note">First {MAX_TABLE_ROWS} of {len(frame)} rows; all rows are '
                "in the result's tables.</p>")
        frame = frame.head(MAX_TABLE_ROWS)
    heading = f"<h3>{escape(caption)}</h3>" if caption else ""
    markup = frame.to_html(border=0, na_rep="", float_format=lambda v: f"{v:.4g}",
                           escape=True)
    return f'{heading}<div class="table">{markup}</div>{note}'


def paragraph(text, css_class=None):
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def definitions(items):
    """A ``<dl>`` of label/value pairs."""
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f"<dl>{rows}</dl>"


def code(text):
    return f"<code>{escape(text)}</code>"
