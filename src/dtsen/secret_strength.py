"""How guessable a secret is: an estimate of its entropy in bits, for `dtsen check-deployment`.

A long secret is not a strong one: 16 x "a" or `password1234567890` pass any length rule. The
estimate is the shortest description of the secret in the terms an attacker guesses in (in the
manner of zxcvbn, without its dependency or its 30,000-word lists): the secret is split into pieces,
each either one character drawn at random from the character classes the secret uses, or a pattern
that costs far fewer bits than its length suggests:

- a copy of text just before it (`aaaa`, `abcabc`, `Passw0rdPassw0rd`),
- a run with a constant step (`1234567890`, `abcdef`, `97531`, `zyx`),
- a run along a keyboard row (`qwerty`, `asdfgh`, `poiuy`),
- a common password or word (`COMMON` below; also capitalised, reversed or in l33t: `P@ssw0rd`),
- a year or a date (`2026`, `17081945`).

The cheapest split (dynamic programming over the positions) gives the bits. A secret made by a
random generator (`openssl rand -hex 24`, `secrets.token_urlsafe(32)`, a Fernet key) scores far
above any threshold here; one made of patterns scores low however long it is. The estimate cannot
know every word a person may choose, so it is an upper bound for chosen secrets: generate them.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from itertools import pairwise

# Most common first (the rank is what a guesser tries first): leaked-password lists' heads, the
# words this deployment's own names suggest, and common Indonesian words people build passwords from.
COMMON = """
password 123456 123456789 12345678 12345 qwerty 1234567 111111 1234567890 123123 abc123 1234 password1
iloveyou 1q2w3e4r 000000 qwerty123 zaq12wsx dragon sunshine princess letmein 654321 monkey 27653 1qaz2wsx
123321 qwertyuiop superman asdfghjkl welcome football baseball master shadow michael jordan hello freedom
whatever trustno1 starwars login passw0rd admin administrator root toor changeme change default secret
test testing guest user demo sample example temp temporary pass passwd passphrase access master key
secretkey privatekey token apikey jwt fernet redis postgres postgresql mysql database airflow celery
mailpit mailcatcher dataops ops dtsen kemensos dukcapil bps pemda registry warehouse landing publish
docker compose production staging development trial local localhost server system service manager
love lovely loveyou baby angel honey sweet flower summer winter spring autumn happy lucky charlie
batman pokemon naruto killer hunter ranger soccer hockey killer matrix ninja cookie cheese chocolate
computer internet security secure hacker google facebook microsoft apple samsung android windows linux
ubuntu debian oracle cisco hunter2 correcthorsebatterystaple qazwsx asdf zxcv zxcvbnm asdfgh qwert
indonesia jakarta bandung surabaya medan bali garuda pancasila merdeka bismillah alhamdulillah
rahasia sandi katasandi kata kunci masuk sayang cinta aku kamu dia kita rumah kantor dinas
sosial kementerian pusat daerah negara bangsa rakyat selamat pagi siang malam satu dua tiga empat
admin123 password123 root123 test123 qwe123 abcd1234 pass123 welcome1 letmein1 secret123
""".split()
WORDS = {word: rank for rank, word in reversed(list(enumerate(COMMON, start=1)))}
LONGEST_PATTERN = max(
    26, *map(len, WORDS)
)  # a run is at most the alphabet; keyboard rows and dates are shorter
L33T = str.maketrans({"4": "a", "@": "a", "8": "b", "3": "e", "6": "g", "1": "i", "!": "i", "0": "o",
                      "$": "s", "5": "s", "7": "t", "+": "t", "2": "z"})  # fmt: skip
KEYBOARD_ROWS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./")
OBVIOUS_STARTS = "aAzZ019"
PATTERN_BIT = 1.0  # which kind of piece this is: an attacker does not know the split either

KINDS = {
    "copy": "a repeated character or piece",
    "run": "a run like 1234 or abcd",
    "keyboard": "a keyboard row like qwerty",
    "word": "a common password or word",
    "date": "a year or a date",
}


@dataclass(frozen=True)
class Strength:
    bits: float
    kinds: tuple[str, ...]  # the patterns found (keys of KINDS), in order; never the secret's text

    def described(self) -> str:
        found = ", ".join(KINDS[k] for k in dict.fromkeys(self.kinds))
        return found or "too few kinds of character for its length"


def _charset_size(secret: str) -> int:
    classes = (
        (string.ascii_lowercase, 26),
        (string.ascii_uppercase, 26),
        (string.digits, 10),
        (string.punctuation + " ", 33),
    )
    size = sum(n for chars, n in classes if any(c in chars for c in secret))
    if any(not (c.isascii() and c.isprintable()) for c in secret):
        size += 128  # anything else (raw bytes, other scripts): a guess, generous to the secret
    return max(size, 1)


def _case_bits(piece: str) -> float:
    """Bits of a word's capitalisation: none for lower case, one for Capitalised or UPPER."""
    letters = [c for c in piece if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    if upper == 0:
        return 0.0
    if upper == len(letters) or (piece[:1].isupper() and upper == 1):
        return 1.0
    fewer = min(upper, len(letters) - upper)
    return math.log2(sum(math.comb(len(letters), k) for k in range(1, fewer + 1)))


def _word_bits(piece: str) -> float | None:
    lower = piece.lower()
    best = None
    for candidate, extra in ((lower, 0.0), (lower[::-1], 1.0)):
        plain = candidate.translate(L33T)
        for text, substituted in (
            (candidate, 0),
            (plain, sum(a != b for a, b in zip(candidate, plain, strict=True))),
        ):
            rank = WORDS.get(text)
            if rank is not None:
                bits = math.log2(rank) + _case_bits(piece) + extra + substituted
                best = bits if best is None else min(best, bits)
    return best


def _class_of(c: str) -> tuple[str, int]:
    """The character's class and its size: letters, digits, anything else (symbols, raw bytes)."""
    for chars in (string.ascii_lowercase, string.ascii_uppercase, string.digits):
        if c in chars:
            return chars, len(chars)
    return "", 256


def _run_bits(piece: str) -> float | None:
    """A run with one constant step (1 to 5, either way) within one character class."""
    chars = _class_of(piece[0])
    if any(_class_of(c) != chars for c in piece):
        return None
    steps = {ord(b) - ord(a) for a, b in pairwise(piece)}
    if len(steps) != 1 or not 1 <= abs(step := steps.pop()) <= 5:
        return None
    start = 2.0 if piece[0] in OBVIOUS_STARTS else math.log2(chars[1])
    return (
        start + math.log2(len(piece)) + (1.0 if step < 0 else 0.0) + (math.log2(5) if abs(step) > 1 else 0.0)
    )


def _keyboard_bits(piece: str) -> float | None:
    lower = piece.lower()
    for row in KEYBOARD_ROWS:
        if all(c in row for c in lower):
            steps = {row.index(b) - row.index(a) for a, b in pairwise(lower)}
            if steps in ({1}, {-1}):
                return (
                    math.log2(len(KEYBOARD_ROWS) * 2 * len(row)) + math.log2(len(piece)) + _case_bits(piece)
                )
    return None


def _date_bits(piece: str) -> float | None:
    if not piece.isdigit():
        return None
    if len(piece) == 4 and 1900 <= int(piece) <= 2099:
        return math.log2(200)
    shapes = {6: ((0, 2, 4, 2), (4, 2, 0, 2)), 8: ((0, 2, 4, 4), (6, 4, 0, 4))}  # ddmmyy(yy), (yy)yymmdd
    for day_at, month_at, _year_at, year_len in shapes.get(len(piece), ()):
        day, month = int(piece[day_at : day_at + 2]), int(piece[month_at : month_at + 2])
        if 1 <= day <= 31 and 1 <= month <= 12:
            return math.log2(366 * (200 if year_len == 4 else 100))
    return None


def estimate(secret: str) -> Strength:
    """The secret's estimated entropy in bits, and which patterns lowered it."""
    n = len(secret)
    if n == 0:
        return Strength(0.0, ())
    brute = math.log2(_charset_size(secret))
    # longest copy starting at i of the text p characters earlier (overlapping: "aaaa" copies "a")
    copy_len = [0] * n
    for p in range(1, n):
        matched = 0
        for k in range(n - 1, p - 1, -1):
            matched = matched + 1 if secret[k] == secret[k - p] else 0
            copy_len[k] = max(copy_len[k], matched)
    best: list[tuple[float, tuple[str, ...]]] = [(0.0, ())] + [(math.inf, ())] * n
    for i in range(n):
        bits_here, kinds_here = best[i]
        if bits_here == math.inf:
            continue
        options = [(i + 1, brute, None)]
        for j in range(i + 3, min(n, i + max(LONGEST_PATTERN, copy_len[i])) + 1):
            piece = secret[i:j]
            if j - i <= copy_len[i]:
                options.append((j, math.log2(i) + math.log2(j - i), "copy"))
            if j - i > LONGEST_PATTERN:
                continue  # only a copy is this long
            if (bits := _word_bits(piece)) is not None:
                options.append((j, bits, "word"))
            if (bits := _date_bits(piece)) is not None:
                options.append((j, bits, "date"))
            if (bits := _run_bits(piece)) is not None:
                options.append((j, bits, "run"))
            if j - i >= 4 and (bits := _keyboard_bits(piece)) is not None:
                options.append((j, bits, "keyboard"))
        for j, bits, kind in options:
            total = bits_here + bits + (PATTERN_BIT if kind else 0.0)
            if total < best[j][0]:
                best[j] = (total, kinds_here + ((kind,) if kind else ()))
    return Strength(best[n][0], best[n][1])
