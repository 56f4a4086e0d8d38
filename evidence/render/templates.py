"""The Jinja2 environment: autoescaped, strict, loading the report templates.

The wheel force-includes the repository's top-level ``templates/`` as ``evidence/templates``; an
editable install has only the top-level directory, so both are searched, packaged copy first.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import evidence
from evidence.render import context
from evidence.render.interface import RenderError


def template_dirs() -> list[Path]:
    package_dir = Path(evidence.__file__).resolve().parent
    candidates = (package_dir / "templates", package_dir.parent / "templates")
    return [d for d in candidates if (d / "report.html.j2").is_file()]


@cache
def environment() -> Environment:
    dirs = template_dirs()
    if not dirs:
        raise RenderError(
            "report templates not found",
            hint="reinstall the package; templates/ ships inside the wheel as evidence/templates",
        )
    env = Environment(
        loader=FileSystemLoader([str(d) for d in dirs]),
        # Every tenant-supplied value is untrusted: autoescape all HTML/Jinja templates.
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["short_name"] = context.short_name
    env.filters["scope_label"] = context.scope_label
    env.filters["ts"] = context.timestamp
    env.filters["pointer"] = context.pointer_label
    env.globals["status_labels"] = context.STATUS_LABELS
    return env
