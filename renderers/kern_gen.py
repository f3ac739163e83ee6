"""Procedural two-staff piano music in **kern, a pure function of a numpy Generator.

The result is always valid: every measure of every staff fills the meter exactly,
beams group notes shorter than a beat within one beat, ties join equal pitches,
pitches carry the accidentals of the key (with occasional chromatic alterations),
and clef or key changes happen only at barlines. No openly licensed piano corpus
exists, so this is the engine's built-in input.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

# Order of sharps and flats in key signatures.
_SHARPS = "fcgdaeb"
_FLATS = "beadgcf"
# (numerator, denominator, beat length in 16ths, measure length in 16ths)
_METERS = ((4, 4, 4, 16), (3, 4, 4, 12), (2, 4, 4, 8), (6, 8, 6, 12), (3, 8, 6, 6), (2, 2, 8, 16), (9, 8, 6, 18))
# Rhythms of one beat, in 16ths.
_BEAT_RHYTHMS = {
    4: ((4,), (4,), (2, 2), (2, 2), (1, 1, 2), (2, 1, 1), (1, 1, 1, 1), (3, 1)),
    6: ((6,), (4, 2), (2, 2, 2), (2, 2, 2), (3, 1, 2), (2, 1, 1, 2)),
    8: ((8,), (4, 4), (4, 2, 2), (6, 2), (2, 2, 2, 2)),
}
_KERN_DURATION = {16: "1", 12: "2.", 8: "2", 6: "4.", 4: "4", 3: "8.", 2: "8", 1: "16"}
_LETTERS = "cdefgab"


def _pitch_name(step: int) -> str:
    """Diatonic step (0 = middle C) to a kern pitch letter run without accidental."""
    octave, degree = divmod(step, 7)
    letter = _LETTERS[degree]
    if octave >= 0:
        return letter * (octave + 1)
    return letter.upper() * (-octave)


class _Staff:
    def __init__(self, rng: np.random.Generator, clef: str, low: int, high: int) -> None:
        self.rng, self.clef, self.low, self.high = rng, clef, low, high
        self.step = int(rng.integers(low + 2, high - 2))


def key_signature(fifths: int) -> str:
    if fifths >= 0:
        return "*k[" + "".join(n + "#" for n in _SHARPS[:fifths]) + "]"
    return "*k[" + "".join(n + "-" for n in _FLATS[:-fifths]) + "]"


def _key_accidentals(fifths: int) -> dict[str, int]:
    if fifths >= 0:
        return {n: 1 for n in _SHARPS[:fifths]}
    return {n: -1 for n in _FLATS[:-fifths]}


_STEPS = (-3, -2, -1, -1, 1, 1, 2, 3, 4, -4)
T = TypeVar("T")


# Plain-Python scalar helpers: np.clip and Generator.choice on scalars cost microseconds per call,
# which made generating a piece ~12 ms (cProfile); one integers() draw per pick keeps it seeded.
def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _pick(rng: np.random.Generator, options: tuple[T, ...]) -> T:
    return options[int(rng.integers(len(options)))]


def _measure_rhythm(rng: np.random.Generator, beat: int, length: int) -> list[int]:
    out: list[int] = []
    beats = length // beat
    b = 0
    while b < beats:
        # Sometimes a note spans two beats (half note, dotted half in 6/8).
        if b + 1 < beats and rng.random() < 0.15 and 2 * beat in _KERN_DURATION:
            out.append(2 * beat)
            b += 2
            continue
        out.extend(_BEAT_RHYTHMS[beat][int(rng.integers(len(_BEAT_RHYTHMS[beat])))])
        b += 1
    if length == 16 and beat == 4 and rng.random() < 0.05:
        out = [16]  # a whole note
    return out


def generate_kern(rng: np.random.Generator, measures: int = 16) -> str:
    """A two-staff piano piece of ``measures`` measures: lower staff first, as in GrandStaff."""
    num, den, beat, length = _METERS[int(rng.integers(len(_METERS)))]
    fifths = int(rng.integers(-5, 6))
    lower = _Staff(rng, "*clefF4", -12, 1) if rng.random() < 0.85 else _Staff(rng, "*clefG2", -3, 9)
    upper = _Staff(rng, "*clefG2", 0, 13)
    staves = (lower, upper)
    meter = f"*M{num}/{den}"
    header = ["**kern\t**kern", f"{lower.clef}\t{upper.clef}", f"{key_signature(fifths)}\t{key_signature(fifths)}"]
    if (num, den) == (4, 4) and rng.random() < 0.4:
        header.append("*met(c)\t*met(c)")
    elif (num, den) == (2, 2) and rng.random() < 0.5:
        header.append("*met(c|)\t*met(c|)")
    header.append(f"{meter}\t{meter}")
    lines = list(header)
    pending_tie: list[str | None] = [None, None]
    rest_p = float(rng.uniform(0.03, 0.15))
    chord_p = (float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.0, 0.3)))
    for m in range(measures):
        if m and rng.random() < 0.04:
            fifths = _clip(fifths + _pick(rng, (-2, -1, 1, 2)), -6, 6)
            lines.append(f"{key_signature(fifths)}\t{key_signature(fifths)}")
        if m and rng.random() < 0.05 and pending_tie[0] is None:
            if lower.clef == "*clefF4":
                lower.clef, lower.low, lower.high = "*clefG2", -3, 9
            else:
                lower.clef, lower.low, lower.high = "*clefF4", -12, 1
            lower.step = _clip(lower.step, lower.low, lower.high)
            lines.append(f"{lower.clef}\t*")
        accidentals = _key_accidentals(fifths)
        columns = []
        for s, staff in enumerate(staves):
            rhythm = _measure_rhythm(rng, beat, length)
            columns.append(_staff_measure(rng, staff, rhythm, beat, accidentals, rest_p, chord_p[s], pending_tie, s))
        lines += _merge_columns(columns)
        lines.append("==\t==" if m == measures - 1 else "=\t=")
    lines.append("*-\t*-")
    return "\n".join(lines) + "\n"


def _staff_measure(rng: np.random.Generator, staff: _Staff, rhythm: list[int], beat: int,
                   accidentals: dict[str, int], rest_p: float, chord_p: float,
                   pending_tie: list[str | None], s: int) -> list[tuple[int, str]]:
    """(onset in 16ths, token) for one staff's measure."""
    events: list[tuple[int, str, int]] = []  # onset, token, duration
    onset = 0
    for i, dur in enumerate(rhythm):
        recip = _KERN_DURATION[dur]
        if pending_tie[s] is not None:
            pitch = pending_tie[s]
            pending_tie[s] = None
            tie_end = True
        else:
            tie_end = False
        if not tie_end and rng.random() < rest_p:
            events.append((onset, f"{recip}r", dur))
            onset += dur
            continue
        if tie_end:
            token = f"{recip}{pitch}]"
        else:
            staff.step = _clip(staff.step + _pick(rng, _STEPS), staff.low, staff.high)
            pitch = _spell(rng, staff.step, accidentals)
            if rng.random() < chord_p:
                extra = sorted({staff.step + int(k) for k in rng.choice((2, 4, 5, 7), size=int(rng.integers(1, 3)))})
                members = [pitch] + [_spell(rng, st, accidentals, chromatic=0.0) for st in extra if st <= staff.high + 4]
                token = " ".join(f"{recip}{p}" for p in members)
            else:
                token = f"{recip}{pitch}"
                if rng.random() < 0.06 and i + 1 <= len(rhythm):
                    token = "[" + token
                    pending_tie[s] = pitch
            if rng.random() < 0.08:
                token = _articulate(rng, token)
        events.append((onset, token, dur))
        onset += dur
    _beam(events, beat)
    return [(o, t) for o, t, _ in events]


def _spell(rng: np.random.Generator, step: int, accidentals: dict[str, int], chromatic: float = 0.06) -> str:
    name = _pitch_name(step)
    alter = accidentals.get(name[0].lower(), 0)
    if chromatic and rng.random() < chromatic:
        alter = _clip(alter + _pick(rng, (-1, 1)), -1, 1)
    return name + {-1: "-", 0: "", 1: "#"}[alter] + ("n" if alter == 0 and name[0].lower() in accidentals else "")


def _articulate(rng: np.random.Generator, token: str) -> str:
    mark = _pick(rng, ("'", "^", ";", "~", "`"))
    first, _, rest = token.partition(" ")
    return first + mark + (" " + rest if rest else "")


def _beam(events: list[tuple[int, str, int]], beat: int) -> None:
    """Beam runs of notes shorter than a quarter inside one beat: L on the first, J on the last."""
    group: list[int] = []

    def flush() -> None:
        if len(group) >= 2:
            for k, mark in ((group[0], "L"), (group[-1], "J")):
                onset, token, dur = events[k]
                first, _, rest = token.partition(" ")
                events[k] = (onset, first + mark + (" " + rest if rest else ""), dur)
        group.clear()

    for k, (onset, token, dur) in enumerate(events):
        if dur >= 4 or _is_rest(token):
            flush()
            continue
        if group and onset // beat != events[group[0]][0] // beat:
            flush()
        group.append(k)
    flush()


def _is_rest(token: str) -> bool:
    head = token.split(" ")[0].lstrip("[(")
    return head.rstrip("LJ]'^;~`").endswith("r")


def _merge_columns(columns: list[list[tuple[int, str]]]) -> list[str]:
    """Align two staves' events on a common time grid, with '.' where a staff holds."""
    onsets = sorted({o for col in columns for o, _ in col})
    by_onset = [dict(col) for col in columns]
    return ["\t".join(col.get(o, ".") for col in by_onset) for o in onsets]
