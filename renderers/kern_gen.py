"""Procedural two-staff piano music in **kern, a pure function of a numpy Generator.

The result is always valid: every measure of every staff fills the meter exactly,
beams group notes shorter than a beat within one beat, ties join equal pitches,
pitches carry the accidentals of the key (with occasional chromatic alterations),
and clef or key changes happen only at barlines. No openly licensed piano corpus
exists, so this is the engine's built-in input.

The piece comes out either as **kern text (``generate_kern``) or directly as the parsed
``KernScore`` that ``parse_kern`` would make of that text (``generate_score``; equal by test),
which spares the engine writing text only to parse it again.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from renderers.kern import KernScore, Line, Measure, state_key

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


_BATCH = 512  # a piece of 12 measures takes ~300-600 draws


class _Draws:
    """Uniform draws from the seeded Generator, fetched in batches.

    One scalar Generator call costs 0.6-1.8 us and a piece needs hundreds; taking them from a
    pre-drawn list made generating a piece ~3x cheaper. Still a pure function of the seed.
    """

    __slots__ = ("_rng", "_next")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._next = iter(()).__next__

    def random(self) -> float:
        try:
            return self._next()
        except StopIteration:
            self._next = iter(self._rng.random(_BATCH).tolist()).__next__
            return self._next()

    def below(self, n: int) -> int:
        """0 <= k < n (u * n rounds below n for every u < 1 in IEEE doubles)."""
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        """low <= k < high."""
        return low + int(self.random() * (high - low))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


class _Staff:
    def __init__(self, draws: _Draws, clef: str, low: int, high: int) -> None:
        self.clef, self.low, self.high = clef, low, high
        self.step = draws.between(low + 2, high - 2)


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
# which made generating a piece ~12 ms (cProfile).
def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _pick(draws: _Draws, options: tuple[T, ...]) -> T:
    return options[int(draws.random() * len(options))]


def _measure_rhythm(draws: _Draws, beat: int, length: int) -> list[int]:
    out: list[int] = []
    beats = length // beat
    b = 0
    while b < beats:
        # Sometimes a note spans two beats (half note, dotted half in 6/8).
        if b + 1 < beats and draws.random() < 0.15 and 2 * beat in _KERN_DURATION:
            out.append(2 * beat)
            b += 2
            continue
        out.extend(_pick(draws, _BEAT_RHYTHMS[beat]))
        b += 1
    if length == 16 and beat == 4 and draws.random() < 0.05:
        out = [16]  # a whole note
    return out


Record = tuple[str, list[str]]  # kind ('**' header, '*' interpretation, '=' barline, 'd' data), fields


def generate_kern(rng: np.random.Generator, measures: int = 16, first: int = 0, stop: int | None = None) -> str:
    """A two-staff piano piece of ``measures`` measures: lower staff first, as in GrandStaff.

    With ``first``/``stop``, only measures ``first`` to ``stop - 1`` of such a piece are written
    (see ``generate_score``), still as a complete file.
    """
    records = _records(rng, measures, first, measures if stop is None else min(stop, measures))
    return "\n".join("\t".join(fields) for _, fields in records) + "\n"


def generate_score(rng: np.random.Generator, measures: int = 16, first: int = 0, stop: int | None = None) -> KernScore:
    """``parse_kern(generate_kern(rng, measures, first, stop))``, built without writing and re-reading text.

    The records are valid by construction (tested by parsing the text), so only what
    ``parse_kern`` records is rebuilt: lines per measure and the clef/key/meter at each barline.
    ``first`` and ``stop`` make only measures ``first`` to ``stop - 1`` of a piece of ``measures``:
    the music opens there with freshly drawn state (as a piece's first measure does), and the last
    of the piece's measures still ends with the final barline. The engine generates just the
    measures of its excerpt this way (~2x less generating than the whole piece up to its end).
    """
    state: dict[int, dict[str, str]] = {0: {}, 1: {}}
    score = KernScore()
    current: list[Line] = []
    start_state: dict[int, dict[str, str]] = {0: {}, 1: {}}
    for kind, fields in _records(rng, measures, first, measures if stop is None else min(stop, measures)):
        if kind == "d":
            current.append(Line("d", fields, [0, 1]))
        elif kind == "=":
            score.measures.append(Measure(current, Line("=", fields, [0, 1]), start_state, True, True))
            current, start_state = [], {0: dict(state[0]), 1: dict(state[1])}
        elif kind == "*" and fields[0] != "*-":
            for owner, token in enumerate(fields):
                key = state_key(token)
                if key:
                    state[owner][key] = token
            current.append(Line("*", fields, [0, 1]))
    return score


def _records(rng: np.random.Generator, measures: int, first: int, stop: int) -> list[Record]:
    """Headers, then the records of measures ``first`` to ``stop - 1`` of the piece, then the terminator."""
    draws = _Draws(rng)
    num, den, beat, length = _pick(draws, _METERS)
    fifths = draws.between(-5, 6)
    lower = _Staff(draws, "*clefF4", -12, 1) if draws.random() < 0.85 else _Staff(draws, "*clefG2", -3, 9)
    upper = _Staff(draws, "*clefG2", 0, 13)
    staves = (lower, upper)
    meter = f"*M{num}/{den}"
    records: list[Record] = [("**", ["**kern", "**kern"]), ("*", [lower.clef, upper.clef]),
                             ("*", [key_signature(fifths), key_signature(fifths)])]
    if (num, den) == (4, 4) and draws.random() < 0.4:
        records.append(("*", ["*met(c)", "*met(c)"]))
    elif (num, den) == (2, 2) and draws.random() < 0.5:
        records.append(("*", ["*met(c|)", "*met(c|)"]))
    records.append(("*", [meter, meter]))
    pending_tie: list[str | None] = [None, None]
    rest_p = draws.uniform(0.03, 0.15)
    chord_p = (draws.uniform(0.1, 0.5), draws.uniform(0.0, 0.3))
    # A change in the first measure made would only be a different opening state: none is drawn there.
    for m in range(first, stop):
        if m > first and draws.random() < 0.04:
            fifths = _clip(fifths + _pick(draws, (-2, -1, 1, 2)), -6, 6)
            records.append(("*", [key_signature(fifths), key_signature(fifths)]))
        if m > first and draws.random() < 0.05 and pending_tie[0] is None:
            if lower.clef == "*clefF4":
                lower.clef, lower.low, lower.high = "*clefG2", -3, 9
            else:
                lower.clef, lower.low, lower.high = "*clefF4", -12, 1
            lower.step = _clip(lower.step, lower.low, lower.high)
            records.append(("*", [lower.clef, "*"]))
        accidentals = _key_accidentals(fifths)
        columns = []
        for s, staff in enumerate(staves):
            rhythm = _measure_rhythm(draws, beat, length)
            columns.append(_staff_measure(draws, staff, rhythm, beat, accidentals, rest_p, chord_p[s], pending_tie, s))
        records += [("d", fields) for fields in _merge_columns(columns)]
        records.append(("=", ["==", "=="] if m == measures - 1 else ["=", "="]))
    records.append(("*", ["*-", "*-"]))
    return records


def _staff_measure(draws: _Draws, staff: _Staff, rhythm: list[int], beat: int,
                   accidentals: dict[str, int], rest_p: float, chord_p: float,
                   pending_tie: list[str | None], s: int) -> list[tuple[int, str]]:
    """(onset in 16ths, token) for one staff's measure."""
    events: list[tuple[int, str, int, bool]] = []  # onset, token, duration, is a rest
    onset = 0
    rand = draws.random
    for i, dur in enumerate(rhythm):
        recip = _KERN_DURATION[dur]
        if pending_tie[s] is not None:
            pitch = pending_tie[s]
            pending_tie[s] = None
            tie_end = True
        else:
            tie_end = False
        if not tie_end and rand() < rest_p:
            events.append((onset, f"{recip}r", dur, True))
            onset += dur
            continue
        if tie_end:
            token = f"{recip}{pitch}]"
        else:
            staff.step = max(staff.low, min(staff.high, staff.step + _STEPS[int(rand() * len(_STEPS))]))
            pitch = _spell(draws, staff.step, accidentals)
            if rand() < chord_p:
                # 1 or 2 added intervals, drawn with replacement (a repeat adds one note)
                added = [_pick(draws, (2, 4, 5, 7)) for _ in range(draws.between(1, 3))]
                extra = sorted({staff.step + k for k in added})
                members = [pitch] + [_spell(draws, st, accidentals, chromatic=0.0) for st in extra if st <= staff.high + 4]
                token = " ".join(f"{recip}{p}" for p in members)
            else:
                token = f"{recip}{pitch}"
                if rand() < 0.06 and i + 1 <= len(rhythm):
                    token = "[" + token
                    pending_tie[s] = pitch
            if rand() < 0.08:
                token = _articulate(draws, token)
        events.append((onset, token, dur, False))
        onset += dur
    _beam(events, beat)
    return [(o, t) for o, t, _, _ in events]


_NAMES = {step: (_pitch_name(step), _LETTERS[step % 7]) for step in range(-35, 35)}  # name, lower-case letter
_ALTER = ("-", "", "#")  # by alteration + 1


def _spell(draws: _Draws, step: int, accidentals: dict[str, int], chromatic: float = 0.06) -> str:
    name, letter = _NAMES[step] if step in _NAMES else (_pitch_name(step), _LETTERS[step % 7])
    alter = accidentals.get(letter, 0)
    if chromatic and draws.random() < chromatic:
        alter = _clip(alter + _pick(draws, (-1, 1)), -1, 1)
    return name + _ALTER[alter + 1] + ("n" if alter == 0 and letter in accidentals else "")


def _articulate(draws: _Draws, token: str) -> str:
    mark = _pick(draws, ("'", "^", ";", "~", "`"))
    first, _, rest = token.partition(" ")
    return first + mark + (" " + rest if rest else "")


def _beam(events: list[tuple[int, str, int, bool]], beat: int) -> None:
    """Beam runs of notes shorter than a quarter inside one beat: L on the first, J on the last."""
    group: list[int] = []

    def flush() -> None:
        if len(group) >= 2:
            for k, mark in ((group[0], "L"), (group[-1], "J")):
                onset, token, dur, is_rest = events[k]
                first, _, rest = token.partition(" ")
                events[k] = (onset, first + mark + (" " + rest if rest else ""), dur, is_rest)
        group.clear()

    for k, (onset, _, dur, is_rest) in enumerate(events):
        if dur >= 4 or is_rest:
            flush()
            continue
        if group and onset // beat != events[group[0]][0] // beat:
            flush()
        group.append(k)
    flush()


def _merge_columns(columns: list[list[tuple[int, str]]]) -> list[list[str]]:
    """Align two staves' events on a common time grid, with '.' where a staff holds."""
    onsets = sorted({o for col in columns for o, _ in col})
    by_onset = [dict(col) for col in columns]
    return [[col.get(o, ".") for col in by_onset] for o in onsets]
