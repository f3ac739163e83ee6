"""A small Humdrum **kern reader/writer for two-staff piano scores.

It reads a file once into measures of kern-only lines (other spines such as **dynam
are dropped), tracks the spine splits/merges and the state in force (clef, key
signature, meter) at every barline, and writes any run of whole measures back as a
stand-alone **kern file with that state carried in. It also writes the normalised
forms used by GrandStaff-trained models (ekern, bekern).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

FORMS = ("kern", "ekern", "bekern")
EKERN_SEP = "·"


class KernError(ValueError):
    """A file or excerpt that cannot be used, with a stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# -- tokens ------------------------------------------------------------------
# Signifiers that may decorate a note or rest: beams, slurs, ties, articulations,
# ornaments, grace marks, stem directions, editorial marks (Humdrum **kern reference).
_DECORATION = set("()[]{}_&LJKk;'\"^`~:,|<>/\\qQPpSsTtMmWwRuUvVoOxXyYzZ$?NHhIij!+*@")
_DURATION = re.compile(r"\d+(?:%\d+)?\.*")
_PITCH = re.compile(r"([a-gA-G])\1*")
_ACCIDENTAL = re.compile(r"#+|-+|n")
_INTERP_KEEP = re.compile(r"^\*(clef[GFCX][\d]?v?\d?|clef[GFC]\d?|k\[[a-g#\-n]*\]|M\d+/\d+(%\d+)?|met\([^)]*\)|\^|v|-)$")


@dataclass
class Part:
    """One component of a note/rest subtoken: kind is duration, pitch, accidental, rest or decoration."""

    kind: str
    text: str


def split_subtoken(sub: str, need_duration: bool = False) -> list[Part]:
    """Split one note/rest/chord-member token into its parts; raises KernError on unknown signifiers.

    Humdrum does not fix the order of signifiers, so parts are kept in written order;
    joining their texts gives the token back.
    """
    parts: list[Part] = []
    i, pitch, rest, duration, accidental, grace = 0, False, False, False, False, False
    while i < len(sub):
        ch = sub[i]
        if ch.isdigit() and not duration:
            m = _DURATION.match(sub, i)
            parts.append(Part("duration", m.group()))
            duration = True
            i = m.end()
        elif ch == "." and duration:
            parts.append(Part("duration", ch))  # a dot written apart from its number
            i += 1
        elif ch in "abcdefgABCDEFG" and not pitch:
            m = _PITCH.match(sub, i)
            parts.append(Part("pitch", m.group()))
            pitch = True
            i = m.end()
        elif ch in "#-n" and pitch and not rest and not accidental:
            m = _ACCIDENTAL.match(sub, i)
            parts.append(Part("accidental", m.group()))
            accidental = True
            i = m.end()
        elif ch == "r" and not rest:
            j = i
            while j < len(sub) and sub[j] == "r":
                j += 1
            parts.append(Part("rest", sub[i:j]))
            rest = True
            i = j
        elif ch in _DECORATION:
            grace = grace or ch in "qQ"
            parts.append(Part("decoration", ch))
            i += 1
        else:
            raise KernError("unknown_token", f"{sub!r}: unexpected {ch!r}")
    if not pitch and not rest:
        raise KernError("unknown_token", f"{sub!r}: no pitch or rest")
    if need_duration and not duration and not grace:
        raise KernError("unknown_token", f"{sub!r}: no duration")
    return parts


@lru_cache(maxsize=1 << 16)
def _subtoken_error(sub: str, need_duration: bool) -> KernError | None:
    # Pieces reuse a small vocabulary of tokens: checking each distinct one once makes parsing ~3x faster.
    try:
        split_subtoken(sub, need_duration)
    except KernError as exc:
        return exc
    return None


def check_data_field(token: str) -> None:
    if token == ".":
        return
    for n, sub in enumerate(token.split(" ")):
        if sub != ".":
            error = _subtoken_error(sub, n == 0)  # later chord members may inherit the duration
            if error is not None:
                raise KernError(error.reason, error.detail)


# -- parsed score ---------------------------------------------------------------
@dataclass
class Line:
    """One kern-only record: kind is '*' (interpretation), '=' (barline) or 'd' (data)."""

    kind: str
    fields: list[str]
    owners: list[int]  # 0 = first **kern spine (lower staff), 1 = second


@dataclass
class Measure:
    lines: list[Line]  # interpretations and data of the measure, in order
    bar: Line | None  # the barline that closes it (None at the very end of a file)
    state: dict[int, dict[str, str]]  # clef/key/meter per spine in force at the start
    simple_start: bool  # exactly one field per kern spine at the start (a legal cut point)
    simple_end: bool


@dataclass
class KernScore:
    measures: list[Measure] = field(default_factory=list)

    def cut_points(self) -> list[int]:
        """Indices of measures an excerpt may start with."""
        return [i for i, m in enumerate(self.measures) if m.simple_start and any(ln.kind == "d" for ln in m.lines)]


def decode_bytes(data: bytes) -> str:
    """UTF-8 with a Latin-1 fallback (older Humdrum files are Latin-1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def state_key(token: str) -> str | None:
    if token.startswith("*clef"):
        return "clef"
    if token.startswith("*k["):
        return "key"
    if token.startswith("*M") and token[2:3].isdigit():
        return "meter"
    if token.startswith("*met("):
        return "met"
    return None


def parse_kern(text: str) -> KernScore:
    """Parse a Humdrum file with exactly two **kern spines into measures; KernError on bad input."""
    owners: list[int] | None = None  # per column: 0/1 for kern spines, -1 for others
    state: dict[int, dict[str, str]] = {0: {}, 1: {}}
    score = KernScore()
    current: list[Line] = []
    start_state = {0: {}, 1: {}}
    start_simple = True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line or line.startswith("!!"):
            continue
        fields = line.split("\t")
        if owners is None:
            if not fields[0].startswith("**"):
                raise KernError("malformed_spines", f"line {number}: data before the ** spine headers")
            kern = [i for i, f in enumerate(fields) if f == "**kern"]
            if len(kern) != 2:
                raise KernError("not_two_staff", f"{len(kern)} **kern spines ({' '.join(fields)})")
            owners = [kern.index(i) if i in kern else -1 for i in range(len(fields))]
            kern_idx, kern_owners = _kern_columns(owners)
            continue
        if len(fields) != len(owners):
            raise KernError("malformed_spines", f"line {number}: {len(fields)} fields where {len(owners)} spines are open")
        if fields[0].startswith("!"):
            continue  # local comments and layout records: not part of the target
        if fields[0].startswith("*"):
            if not all(f.startswith("*") for f in fields):
                raise KernError("malformed_spines", f"line {number}: interpretation record mixed with data")
            before = owners
            owners = _apply_manipulators(fields, owners, number)
            keep, keep_owners = [], []
            for i in kern_idx:
                tok = fields[i]
                if tok == "*-":
                    continue
                if _INTERP_KEEP.match(tok):
                    key = state_key(tok)
                    if key:
                        state[before[i]][key] = tok
                    keep.append(tok)
                else:
                    keep.append("*")
                keep_owners.append(before[i])
            if any(t != "*" for t in keep):
                current.append(Line("*", keep, keep_owners))
            if not any(o >= 0 for o in owners):
                break  # all kern spines terminated
            kern_idx, kern_owners = _kern_columns(owners)
            continue
        if fields[0].startswith("="):
            if not all(f.startswith("=") for f in fields):
                raise KernError("malformed_spines", f"line {number}: barline in some spines only")
            bar = Line("=", [fields[i] for i in kern_idx], list(kern_owners))
            score.measures.append(Measure(current, bar, start_state, start_simple, len(kern_idx) == 2))
            current, start_state, start_simple = [], _copy(state), len(kern_idx) == 2
            continue
        tokens = fields if len(kern_idx) == len(fields) else [fields[i] for i in kern_idx]
        for tok in tokens:
            error = _field_error(tok)
            if error is not None:
                raise KernError(error.reason, f"line {number}: {error.detail}")
        if any(t != "." for t in tokens):
            current.append(Line("d", tokens, list(kern_owners)))
    if owners is None:
        raise KernError("malformed_spines", "no ** spine headers")
    if any(ln.kind == "d" for ln in current):
        score.measures.append(Measure(current, None, start_state, start_simple, True))
    if not score.measures:
        raise KernError("no_music", "no measures with notes")
    return score


def _kern_columns(owners: list[int]) -> tuple[list[int], list[int]]:
    """Columns of the **kern spines and their owners, recomputed only when spines change."""
    idx = [i for i, o in enumerate(owners) if o >= 0]
    return idx, [owners[i] for i in idx]


@lru_cache(maxsize=1 << 16)
def _field_error(token: str) -> KernError | None:
    # Whole fields repeat too (a chord, a held '.'): one lookup per field instead of per member.
    try:
        check_data_field(token)
    except KernError as exc:
        return exc
    return None


def _copy(state: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    return {k: dict(v) for k, v in state.items()}


def _apply_manipulators(fields: list[str], owners: list[int], number: int) -> list[int]:
    """The column owners after this interpretation record's *^ *v *x *+ *- (and ** for added spines)."""
    out: list[int] = []
    i = 0
    while i < len(fields):
        tok, owner = fields[i], owners[i]
        if tok == "*^":
            out += [owner, owner]
        elif tok == "*v":
            j = i
            while j + 1 < len(fields) and fields[j + 1] == "*v":
                if owners[j + 1] != owner:
                    raise KernError("malformed_spines", f"line {number}: *v joins two different staves")
                j += 1
            if j == i:
                raise KernError("malformed_spines", f"line {number}: lone *v")
            out.append(owner)
            i = j
        elif tok == "*x":
            if i + 1 >= len(fields) or fields[i + 1] != "*x":
                raise KernError("malformed_spines", f"line {number}: unpaired *x")
            out += [owners[i + 1], owner]
            i += 1
        elif tok == "*-":
            pass
        elif tok == "*+":
            out += [owner, -1]
        elif tok.startswith("**"):
            if tok == "**kern":
                raise KernError("not_two_staff", f"line {number}: a third **kern spine is added")
            out.append(-1)
        else:
            out.append(owner)
        i += 1
    return out


# -- writing excerpts -------------------------------------------------------------
_BAR_NUMBER = re.compile(r"^(=+)\d*[a-z]?")
_HEADER_KEYS = ("clef", "key", "meter", "met")


@lru_cache(maxsize=1024)
def _bar_token(token: str) -> str:
    # Measure numbers are dropped: Verovio would print them, and they say nothing the image shows.
    return _BAR_NUMBER.sub(r"\1", token)


def excerpt(score: KernScore, start: int, count: int) -> str:
    """Measures [start, start+count) as a stand-alone **kern file with the state at the cut carried in."""
    measures = score.measures[start:start + count]
    if len(measures) != count or count < 1:
        raise KernError("bad_cut", f"measures {start}..{start + count} out of range ({len(score.measures)})")
    if not measures[0].simple_start or not measures[-1].simple_end:
        raise KernError("bad_cut", "a spine split is open at the cut")
    state = _copy(measures[0].state)
    body: list[Line] = []
    leading = True
    for measure in measures:
        for line in measure.lines:
            if leading and line.kind == "*" and len(line.fields) == 2 and all(
                    t == "*" or state_key(t) for t in line.fields):
                for owner, tok in zip(line.owners, line.fields, strict=True):
                    if tok != "*":
                        state[owner][state_key(tok)] = tok
                continue
            leading = False
            body.append(Line(line.kind, list(line.fields), list(line.owners)))
        if measure.bar is not None:
            body.append(Line("=", [_bar_token(t) for t in measure.bar.fields], list(measure.bar.owners)))
    _close_spans(body)
    out = ["**kern\t**kern"]
    for key in _HEADER_KEYS:
        tokens = [state[o].get(key, "*") for o in (0, 1)]
        if any(t != "*" for t in tokens):
            out.append("\t".join(tokens))
    out += ["\t".join(line.fields) for line in body]
    out.append("*-\t*-")
    return "\n".join(out) + "\n"


@lru_cache(maxsize=256)
def _voices(owners: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(spine, sub-spine index) of each field of a line: a key that follows a voice through a split."""
    seen: dict[int, int] = {}
    keys = []
    for owner in owners:
        keys.append((owner, seen.get(owner, 0)))
        seen[owner] = seen.get(owner, 0) + 1
    return tuple(keys)


_SPAN_MARKS = frozenset("()LJ[]_")


@lru_cache(maxsize=1 << 16)
def _split_cached(sub: str) -> tuple[tuple[str, str], ...]:
    return tuple((p.kind, p.text) for p in split_subtoken(sub))


@lru_cache(maxsize=1 << 16)
def _span_marks(sub: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """A token's tie key (pitch with accidental, lower case) and its span marks as (part index, mark)."""
    parts = _split_cached(sub)
    pitch = "".join(text for kind, text in parts if kind in ("pitch", "accidental")).lower()
    return pitch, tuple((i, text) for i, (kind, text) in enumerate(parts) if kind == "decoration" and text in _SPAN_MARKS)


def _close_spans(body: list[Line]) -> None:
    """Drop slur/beam/tie marks whose partner lies outside the excerpt, so it stands alone.

    Marks are followed from a per-token cache; a token is split into editable parts only when
    one of its marks changes (few do: most spans close inside the excerpt).
    """
    slurs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    beams: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    ties: dict[tuple[int, int, str], tuple[int, int, int]] = {}
    parts: dict[tuple[int, int, int], list[Part]] = {}  # only the tokens that change

    def get(li: int, fi: int, si: int) -> list[Part]:
        key = (li, fi, si)
        if key not in parts:
            parts[key] = [Part(kind, text) for kind, text in _split_cached(body[li].fields[fi].split(" ")[si])]
        return parts[key]

    def set_mark(where: tuple[int, int, int], index: int, text: str) -> None:
        get(*where)[index].text = text

    for li, line in enumerate(body):
        if line.kind != "d":
            continue
        for fi, voice in enumerate(_voices(tuple(line.owners))):
            field = line.fields[fi]
            if field == "." or not _SPAN_MARKS.intersection(field):
                continue  # nothing that opens or closes a span: the field stays as written
            for si, sub in enumerate(field.split(" ")):
                if sub == "." or not _SPAN_MARKS.intersection(sub):
                    continue
                pitch, marks = _span_marks(sub)
                where = (li, fi, si)
                tie_key = (*voice, pitch)
                for index, mark in marks:
                    for stacks, opener, closer in ((slurs, "(", ")"), (beams, "L", "J")):
                        if mark == opener:
                            stacks.setdefault(voice, []).append(where)
                        elif mark == closer:
                            if stacks.get(voice):
                                stacks[voice].pop()
                            else:
                                set_mark(where, index, "")
                    if mark == "[":
                        ties[tie_key] = where
                    elif mark in ("_", "]"):
                        if tie_key not in ties:
                            if mark == "_":
                                set_mark(where, index, "[")
                                ties[tie_key] = where
                            else:
                                set_mark(where, index, "")
                        elif mark == "]":
                            del ties[tie_key]
                        else:
                            ties[tie_key] = where
    for stacks, opener in ((slurs, "("), (beams, "L")):
        for stack in stacks.values():
            for where in stack:
                _drop_one(get(*where), opener)
    for where in ties.values():
        for p in get(*where):
            if p.text == "[":
                p.text = ""
            elif p.text == "_":
                p.text = "]"
    for (li, fi, si), ps in parts.items():
        subs = body[li].fields[fi].split(" ")
        subs[si] = "".join(p.text for p in ps)
        body[li].fields[fi] = " ".join(subs)


def _drop_one(ps: list[Part], mark: str) -> None:
    for p in reversed(ps):
        if p.kind == "decoration" and p.text == mark:
            p.text = ""
            return


# -- normalised forms -------------------------------------------------------------
def to_form(kern: str, form: str) -> str:
    """kern as is; ekern/bekern split every note/rest token into its parts with '·' (see docs)."""
    if form == "kern":
        return kern
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}")
    lines = []
    for line in kern.rstrip("\n").split("\n"):
        fields = line.split("\t")
        if line.startswith("**"):
            fields = ["**ekern_1.0" for _ in fields]
        elif not line.startswith(("*", "=", "!")):
            fields = [f if f == "." else " ".join(_split_form(s, form) for s in f.split(" ")) for f in fields]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def _split_form(sub: str, form: str) -> str:
    if sub == ".":
        return sub
    groups: list[str] = []
    last = None
    for p in split_subtoken(sub):
        kind = "pitch" if p.kind == "accidental" and form == "ekern" else p.kind
        if form == "ekern" and kind == last and kind in ("decoration", "pitch"):
            groups[-1] += p.text
        else:
            groups.append(p.text)
        last = kind
    return EKERN_SEP.join(groups)


def from_form(text: str) -> str:
    """Back from ekern/bekern to kern (the separators carry no information)."""
    return text.replace(EKERN_SEP, "").replace("**ekern_1.0", "**kern")
