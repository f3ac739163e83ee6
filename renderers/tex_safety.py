"""Lock-down checks on TeX snippets that come from arbitrary .tex files (defence in depth).

TeX itself also runs with shell escape off and kpathsea paranoid (``openin_any=p``,
``openout_any=p``), confined to its working folder; this pre-check refuses, before any
TeX run, snippets that reach for files, the shell, global state or the parser itself.
It also refuses unbalanced braces/environments, which in a batch would make TeX read
past the snippet's end into its neighbours.
"""

from __future__ import annotations

import re

# Control words a snippet may never use. Matched as whole control words (``\input`` but not ``\inputx``).
FORBIDDEN_WORDS = (
    # files, shell, terminal
    "write", "write18", "immediate", "input", "include", "includeonly", "openin", "openout", "read",
    "readline", "closein", "closeout", "endinput", "InputIfFileExists", "IfFileExists", "includegraphics",
    "lstinputlisting", "verbatiminput", "VerbatimInput", "import", "subimport", "inputlineno", "newread",
    "newwrite", "filecontents", "ShellEscape", "directlua", "luaexec", "special", "message", "typeout",
    "jobname", "font", "openany",
    # pdfTeX/XeTeX primitives that embed or read files, or change the output
    "pdfobj", "pdfximage", "pdfrefximage", "pdffilesize", "pdffiledump", "pdffilemoddate", "pdfmdfivesum",
    "pdfliteral", "pdfpagewidth", "pdfpageheight", "pdfcompresslevel", "XeTeXpicfile", "XeTeXpdffile",
    "pdfstrcmp", "shipout", "output", "mark",
    # parser and global state: catcodes, name construction, rescanning, global assignments
    "catcode", "lccode", "uccode", "sfcode", "mathcode", "delcode", "csname", "endcsname", "scantokens",
    "detokenize", "string", "expandafter", "global", "gdef", "xdef", "edef", "globaldefs", "aftergroup",
    "afterassignment", "everypar", "everymath", "everydisplay", "everyhbox", "everyvbox", "everyjob",
    "everycr", "everyeof", "endlinechar", "newlinechar", "escapechar", "makeatletter", "makeatother",
    "setcounter", "addtocounter", "stepcounter", "refstepcounter", "newcounter", "count", "countdef",
    "batchmode", "nonstopmode", "scrollmode", "errorstopmode", "end", "dump", "errmessage", "errhelp",
    "usepackage", "RequirePackage", "documentclass", "LoadClass", "begingroup", "endgroup",
    "ExplSyntaxOn", "ExplSyntaxOff", "bgroup", "egroup", "pagestyle", "thispagestyle", "newpage", "clearpage", "pagebreak",
    "vfill", "eject", "penalty", "par",
)  # fmt: skip
_WORD_RE = re.compile(r"\\([A-Za-z@]+)")
_FORBIDDEN = frozenset(FORBIDDEN_WORDS)
_FORBIDDEN_ENVS = frozenset({"document", "filecontents", "filecontents*", "verbatim", "comment", "lstlisting"})
_ENV_RE = re.compile(r"\\(begin|end)\s*\{([^{}]*)\}")


def check_snippet(tex: str, max_chars: int = 20000) -> str | None:
    """None when ``tex`` may be compiled; otherwise why not (one line, no file contents)."""
    if len(tex) > max_chars:
        return f"snippet of {len(tex)} characters is longer than {max_chars}"
    if "^^" in tex:
        return "^^ character escapes are not allowed (they can spell hidden commands)"
    if any(ord(c) < 32 and c not in "\t\n\r" for c in tex):
        return "control characters are not allowed"
    # \end is forbidden as a primitive (\end ends the run), but \end{env} is how environments close.
    for match in _WORD_RE.finditer(tex):
        word = match.group(1)
        if "@" in word:
            return f"internal command \\{word} is not allowed"
        if word in _FORBIDDEN and not (word == "end" and re.match(r"\s*\{", tex[match.end() :])):
            return f"command \\{word} is not allowed"
    problem = _balance(tex)
    if problem:
        return problem
    stack: list[str] = []
    for kind, name in _ENV_RE.findall(tex):
        name = name.strip()
        if name in _FORBIDDEN_ENVS:
            return f"environment {name} is not allowed"
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            return f"\\end{{{name}}} does not match an open \\begin"
    if stack:
        return f"\\begin{{{stack[-1]}}} is never closed"
    return None


def _balance(tex: str) -> str | None:
    """Unescaped braces must balance; a comment would hide the rest of a joined line."""
    depth = 0
    i = 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            i += 2
            continue
        if c == "%":
            return "comments (%) are not allowed inside a snippet"
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return "unbalanced braces: '}' without '{'"
        i += 1
    if depth:
        return f"unbalanced braces: {depth} '{{' never closed"
    if len(re.findall(r"(?<!\\)\$", tex)) % 2:
        return "unbalanced $: math mode would run into the next snippet"
    return None


def strip_comments(tex: str) -> str:
    """Remove ``%`` comments (not ``\\%``) to the end of their line, as TeX does."""
    out = []
    for line in tex.split("\n"):
        i = 0
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == "%":
                line = line[:i]
                break
            i += 1
        out.append(line)
    return "\n".join(out)
