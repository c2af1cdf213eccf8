"""The "did you mean" of every message: the names that exist closest to one that does not (account ids, keys and
values of the configuration, file names).

What is suggested, the closest first:

1. the names that are the same but for case and zeros written before a number (`ACC_TEAM_01` and `acc_team_1`
   for `acc_team_01`), if there are any;
2. else those that take the fewest edits (a character added, removed or replaced, or two neighbours swapped)
   between the case-folded names, if that is at most a third of the name's length (one for a short name) and
   fewer than its length;
3. among as close, the one whose numbers are nearest in value first (`acc_team_13`: `acc_team_12` before
   `acc_team_31`), then the one nearest in length (`httpz`: `https` before `http`), then in text order: the
   same input always gives the same suggestions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Names suggested at most, where more than one may be.
MAX_SUGGESTED = 3

_NUMBER = re.compile(r"\d+")


def closest(word: str, options: Iterable[str], limit: int = MAX_SUGGESTED) -> list[str]:
    """The (at most `limit`) options closest to `word`, the closest first; none if none is close."""
    folded = word.casefold()
    key = _unpadded(folded)
    candidates = set(options)
    same = sorted(option for option in candidates if _unpadded(option.casefold()) == key)
    if same:
        return same[:limit]
    bound = min(max(1, len(folded) // 3), len(folded) - 1)
    letters = set(folded)
    found: list[tuple[int, str, str]] = []
    for option in candidates:
        other = option.casefold()
        # Cheap bounds first: each edit changes the length by one at most, and brings at most one letter that
        # is missing on either side.
        if abs(len(other) - len(folded)) > bound or len(letters.symmetric_difference(other)) > 2 * bound:
            continue
        distance = edits(folded, other, bound)
        if distance > bound:
            continue
        found.append((distance, other, option))
        bound = distance  # only the closest are suggested: look no farther
    ranked = sorted(
        (distance, _numbers_apart(folded, other), abs(len(other) - len(folded)), option)
        for distance, other, option in found
        if distance <= bound
    )
    return [option for *_, option in ranked[:limit]]


def suggestion(word: str, options: Iterable[str], limit: int = MAX_SUGGESTED) -> str:
    """` (did you mean 'a', 'b'?)` for the options closest to `word`, or "" when none is close."""
    close = closest(word, options, limit)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


#: Unknown ids named in a refusal, each with the ids closest to it; the rest are counted.
MAX_UNKNOWN_SHOWN = 5


def unknown_ids(unknown: Sequence[str], known: Iterable[str]) -> str:
    """`'acc_1' (did you mean 'acc_01'?), 'x'`: the ids that name no account (the first few), each with the
    closest of the `known` ids (`closest`)."""
    known = set(known)
    parts = [repr(account_id) + suggestion(account_id, known) for account_id in unknown[:MAX_UNKNOWN_SHOWN]]
    more = len(unknown) - MAX_UNKNOWN_SHOWN
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def edits(first: str, second: str, bound: int) -> int:
    """The fewest edits (add, remove, replace a character; swap two neighbours) that make `first` `second`,
    or `bound + 1` when more than `bound` are needed (counting stops there)."""
    start = 0
    while start < len(first) and start < len(second) and first[start] == second[start]:
        start += 1
    end_first, end_second = len(first), len(second)
    while end_first > start and end_second > start and first[end_first - 1] == second[end_second - 1]:
        end_first -= 1
        end_second -= 1
    a, b = first[start:end_first], second[start:end_second]
    if not a or not b:
        return min(max(len(a), len(b)), bound + 1)
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > bound:
            return bound + 1
        before, previous = previous, current
    return min(previous[-1], bound + 1)


def _unpadded(name: str) -> str:
    """`name` with each number written without leading zeros (`acc_007` -> `acc_7`)."""
    return _NUMBER.sub(lambda number: str(int(number.group())), name)


def _numbers_apart(first: str, second: str) -> float:
    """How far apart the numbers of two names are in value, when the names are the same but for their
    numbers (`acc_13` and `acc_31`: 18); otherwise infinity."""
    if _NUMBER.sub("#", first) != _NUMBER.sub("#", second):
        return float("inf")
    return float(
        sum(
            abs(int(x) - int(y)) for x, y in zip(_NUMBER.findall(first), _NUMBER.findall(second), strict=True)
        )
    )
