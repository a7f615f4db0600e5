"""Renderers: turn a Plan (plain data) into text, JSON or Markdown. They only format."""

from engine.render.json import render_json
from engine.render.markdown import render_markdown
from engine.render.text import render_text

RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}

__all__ = ["RENDERERS", "render_json", "render_markdown", "render_text"]
