"""How a region's clerk misspells a name: the variants the pipeline and the NIK-repair matcher must see through.

Deterministic from a key (no random draws), so adding variants does not shift the generator's
random stream. Variants: the pre-1972 Indonesian spelling still on many documents (u -> oe,
j -> dj, c -> tj, y -> j), one letter dropped, two adjacent letters swapped; a quarter stay exact.
"""

from __future__ import annotations

OLD_SPELLING = (("u", "oe"), ("j", "dj"), ("c", "tj"), ("y", "j"))


def _old_spelling(name: str) -> str | None:
    lowered = name.lower()
    for new, old in OLD_SPELLING:
        at = lowered.find(new)
        if at >= 0:
            piece = old[0].upper() + old[1:] if name[at].isupper() else old
            return name[:at] + piece + name[at + 1 :]
    return None


def name_variant(name: str) -> str:
    """The one common variant a region's copy of a Dukcapil name carries (registry keeps Dukcapil's)."""
    for a, b in (("Muhammad", "Muhamad"), ("Nur", "Noor"), ("Siti", "Sitti"), ("y", "i"), ("u", "oe")):
        if a in name:
            return name.replace(a, b, 1)
    return name + "h"


def spelling_variant(name: str, key: int) -> str:
    """A plausible clerk's variant of `name`, chosen by `key` (e.g. the person's NIK)."""
    letters = [i for i, ch in enumerate(name) if ch.isalpha()]
    if len(letters) < 4:
        return name
    kind = key % 4
    if kind == 1:
        return _old_spelling(name) or spelling_variant(name, key + 1)
    if kind == 2:
        at = letters[1 + (key // 4) % (len(letters) - 2)]  # never the first letter
        return name[:at] + name[at + 1 :]
    if kind == 3:
        at = letters[1 + (key // 4) % (len(letters) - 2)]
        if at + 1 < len(name) and name[at + 1].isalpha():
            return name[:at] + name[at + 1] + name[at] + name[at + 2 :]
    return name
