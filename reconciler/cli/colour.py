"""Colour on a terminal: what `reconcile` prints for people, styled with rich.

Colour is on for a stream only when it is a terminal, ``--no-color`` was not given and
``NO_COLOR`` is not set (https://no-color.org; ``TERM=dumb`` counts as no colour too).
Only styles are added: no wrapping, no markup, no emoji, so the words on a terminal are
exactly the piped output's. Machine formats (JSON, markdown, annotations, snapshots)
never pass through here.

What is styled, by the line's own words (the renderers stay plain and pure): steps
(``+`` green, ``!`` destructive red), drift ``~`` and warnings yellow, held-back ``x``
and errors red, headings bold, comments and progress dim, verdicts and "No changes"
green or red.
"""

from __future__ import annotations

import os
from typing import TextIO

from rich.console import Console
from rich.highlighter import RegexHighlighter
from rich.text import Text
from rich.theme import Theme

NO_COLOR_ENV = "NO_COLOR"

_THEME = Theme(
    {
        "reconcile.heading": "bold",
        "reconcile.change": "green",
        "reconcile.destructive": "bold red",
        "reconcile.drift": "yellow",
        "reconcile.warning": "yellow",
        "reconcile.held": "red",
        "reconcile.error": "bold red",
        "reconcile.comment": "dim",
        "reconcile.progress": "dim",
        "reconcile.good": "bold green",
        "reconcile.bad": "bold red",
        "reconcile.step": "cyan",
    },
    inherit=False,
)


class OutputHighlighter(RegexHighlighter):
    """Styles of plan, apply, status and error lines (multi-line patterns, in order)."""

    base_style = "reconcile."
    highlights = [  # noqa: RUF012 (rich's API: a class attribute list)
        r"(?m)^(?P<heading>(Cluster \S+|[A-Z][A-Za-z ,'()+!\[\]-]*:)|Plan: .*|Applied \d+ .*)$",
        r"(?m)^  (?P<change>\+ s\d+)",
        r"(?m)^(?P<destructive>  ! s\d+.*)$",
        r"(?m)^(?P<comment>        # (?!destructive:).*)$",
        r"(?m)^(?P<destructive>        # destructive: .*)$",
        r"(?m)^  (?P<drift>~) ",
        r"(?m)^(?P<warning>  ! (?!s\d+\b).*)$",
        r"(?m)^(?P<held>  x .*)$",
        r"(?m)^(?P<warning>warning: .*)$",
        r"(?m)^(?P<error>error: .*|INVALID .*)$",
        r"(?m)^[^\s:]+(?::\d+)*: (?P<error>error):",
        r"(?m)^[^\s:]+(?::\d+)*: (?P<warning>warning):",
        r"(?m)^(?P<step>\[s\d+\]) ",
        r"(?m)^\[s\d+\] .*(?P<progress>still running .*)$",
        r"(?m)^\[s\d+\] \S+: (?P<good>done)\b",
        r"(?m)^\[s\d+\] \S+: (?P<bad>[A-Z][A-Z ]+):",
        r"(?m)^(?P<progress>Waiting .*)$",
        r"(?m)^(?P<good>No changes\..*|OK) ",
        r"(?m)^(?P<good>No changes\..*)$",
        r"(?m)^Verdict: (?P<good>converged)\b",
        r"(?m)^Verdict: (?P<bad>(?!converged)\S+)",
        r"(?P<bad>NOT reachable)",
    ]


_highlighter = OutputHighlighter()
_disabled = False


def disable_colour() -> None:
    """``--no-color``: plain text on every stream for the rest of the process."""
    global _disabled
    _disabled = True


def colour_wanted(stream: TextIO) -> bool:
    """Colour for this stream? A terminal, no ``--no-color``, no ``NO_COLOR``, no dumb TERM."""
    if _disabled or os.environ.get(NO_COLOR_ENV, "") != "":
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def styled(text: str) -> Text:
    """The text with the output styles applied (what a terminal shows)."""
    return _highlighter(Text(text))


def write_text(stream: TextIO, text: str) -> None:
    """Write text for people: styled on a terminal, as is elsewhere; flushed."""
    if not colour_wanted(stream):
        stream.write(text)
        stream.flush()
        return
    console = Console(
        file=stream,
        theme=_THEME,
        force_terminal=True,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        no_color=False,
    )
    body = text[:-1] if text.endswith("\n") else text
    console.print(styled(body), end="\n" if text.endswith("\n") else "")
    stream.flush()
