"""Pull math and tabular environments out of LaTeX sources (for the formulas and tables engines)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from renderers.tex_safety import strip_comments


@dataclass(frozen=True)
class Found:
    tex: str  # the content, whitespace kept as in the file
    kind: str  # "display" | "inline" | "aligned" | "gathered" | "tabular"
    line: int  # 1-based line of the opening delimiter


_DISPLAY_ENVS = {"equation": "display", "displaymath": "display", "align": "aligned", "eqnarray": "aligned",
                 "alignat": "aligned", "flalign": "aligned", "gather": "gathered", "multline": "gathered",
                 "math": "inline"}  # fmt: skip
_MATH_OPEN = re.compile(
    r"\\begin\{(equation|displaymath|align|alignat|flalign|eqnarray|gather|multline|math)(\*?)\}"
    r"|\$\$|\\\[|\\\(|\$"
)
_DROP = re.compile(r"\\(label|tag\*?)\s*\{[^{}]*\}|\\(nonumber|notag)\b")


def _body(text: str) -> tuple[str, int]:
    """The text after \\begin{document} (all of it when there is none) and its line offset."""
    m = re.search(r"\\begin\{document\}", text)
    if not m:
        return text, 0
    return text[m.end() :], text.count("\n", 0, m.end())


def _escaped(text: str, i: int) -> bool:
    n = 0
    while i > 0 and text[i - 1] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


def extract_math(source: str) -> list[Found]:
    """Display and inline math of a .tex file, in reading order (comments removed)."""
    text, offset = _body(strip_comments(source))
    found: list[Found] = []
    pos = 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if not m:
            break
        if _escaped(text, m.start()):
            pos = m.end()
            continue
        tok = m.group(0)
        if m.group(1):
            env = m.group(1) + m.group(2)
            close = text.find(f"\\end{{{env}}}", m.end())
            kind = _DISPLAY_ENVS[m.group(1)]
            if m.group(1) == "alignat":  # \begin{alignat}{2}: the column count is not content
                am = re.match(r"\s*\{\d+\}", text[m.end() :])
                start = m.end() + (am.end() if am else 0)
            else:
                start = m.end()
            end_len = len(f"\\end{{{env}}}")
        else:
            closer = {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "$": "$"}[tok]
            kind = "inline" if tok in ("$", "\\(") else "display"
            start = m.end()
            close = start
            while True:
                close = text.find(closer, close)
                if close < 0 or not _escaped(text, close):
                    break
                close += 1
            end_len = len(closer)
        if close < 0:
            break
        content = _DROP.sub("", text[start:close]).strip()
        if content and not (tok == "$" and "\n\n" in content):
            found.append(Found(content, kind, offset + text.count("\n", 0, m.start()) + 1))
        pos = close + end_len
    return found


_TAB_OPEN = re.compile(r"\\begin\{(tabular\*?|tabularx)\}")


def _group(text: str, i: int) -> int:
    """Index after the brace group starting at ``text[i] == '{'`` (nested braces); -1 if unclosed."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def extract_tabulars(source: str) -> list[Found]:
    """Outermost tabular/tabular*/tabularx environments, normalised to plain ``tabular``.

    ``tabular*`` and ``tabularx`` lose their width argument (and ``@{\\extracolsep...}``);
    ``X`` columns become ``l``: the target is what Mathpix markdown keeps, plain ``tabular``.
    """
    text, offset = _body(strip_comments(source))
    found: list[Found] = []
    pos = 0
    while True:
        m = _TAB_OPEN.search(text, pos)
        if not m:
            break
        env = m.group(1)
        # The matching \end of the same environment, counting nested ones.
        depth, j = 1, m.end()
        pat = re.compile(r"\\(begin|end)\{" + re.escape(env) + r"\}")
        while depth:
            n = pat.search(text, j)
            if not n:
                break
            depth += 1 if n.group(1) == "begin" else -1
            j = n.end()
        if depth:
            break
        inner = text[m.end() : j - len(f"\\end{{{env}}}")]
        args = inner.lstrip()
        if env != "tabular":  # drop the width argument
            if not args.startswith("{"):
                pos = j
                continue
            args = args[_group(args, 0) :].lstrip()
        if args.startswith("["):
            close = args.find("]")
            args = args[close + 1 :].lstrip()
        if not args.startswith("{") or _group(args, 0) < 0:
            pos = j
            continue
        cols_end = _group(args, 0)
        cols, body = args[1 : cols_end - 1], args[cols_end:]
        if env != "tabular":
            cols = re.sub(r"@\{\\extracolsep\{[^{}]*\}\}", "", cols)
            cols = re.sub(r"(?<!\\)X", "l", cols)
        body = "\n".join(line.strip() for line in body.strip().split("\n") if line.strip())
        tex = f"\\begin{{tabular}}{{{cols.strip()}}}\n{body}\n\\end{{tabular}}"
        found.append(Found(tex, "tabular", offset + text.count("\n", 0, m.start()) + 1))
        pos = j
    return found
