"""Pairs for the sequence-to-sequence demo: dates as people write them -> ISO 8601.

    python tools/dates.py OUT.tsv [--num N] [--seed S]

writes N lines `source<TAB>target`, e.g. `Thursday, the fifth of March, nineteen eighty-seven<TAB>1987-03-05`,
from dates drawn uniformly between 1900-01-01 and 2099-12-31 (Python's datetime; the same seed gives the
same file). Every format names the month or puts the year first, so each source has one reading;
two-digit years are 1950-2049. Sources run from 6 characters (`870305`) to about 60 (years and days in
words), so the file has short and long inputs to compare attention on.
"""

import argparse
import datetime
import random

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
FIRST, LAST = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)


def words(n):
    """0 < n < 100 in English words: 42 -> forty-two."""
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")


def ordinal_words(n):
    """1 <= n <= 31: 21 -> twenty-first."""
    text = words(n)
    head, _, last = text.rpartition("-")
    last = ORDINALS.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return f"{head}-{last}" if head else last


def ordinal(n):
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def year_words(y):
    """1987 -> nineteen eighty-seven; 2005 -> two thousand five; 2010 -> twenty ten."""
    if 2000 <= y < 2010:
        return "two thousand" + (" " + ONES[y % 10] if y % 10 else "")
    century, rest = divmod(y, 100)
    return words(century) + " " + ("hundred" if rest == 0 else ("oh " + ONES[rest]) if rest < 10 else words(rest))


def formats(d, r):
    """Every way this file writes date d (one is drawn per line)."""
    m, day, y = MONTHS[d.month - 1], d.day, d.year
    weekday = d.strftime("%A")
    return [
        f"{day} {m} {y}", f"{day} {m[:3]} {y}", f"{m} {day}, {y}", f"{m[:3]} {day} {y}", f"{m[:3].upper()} {day:02d} {y}",
        f"{day:02d}-{m[:3].lower()}-{y % 100:02d}", f"{y}/{d.month:02d}/{day:02d}", f"{y}.{d.month}.{day}",
        f"{y % 100:02d}{d.month:02d}{day:02d}", f"{weekday}, {m} {day}, {y}", f"{weekday[:3]} {day} {m[:3]} {y}",
        f"the {ordinal(day)} of {m} {y}", f"{m} {ordinal(day)}, {y}", f"{ordinal(day)} {m.lower()} {y}",
        f"the {ordinal_words(day)} of {m}, {year_words(y)}", f"{weekday}, the {ordinal_words(day)} of {m}, {year_words(y)}",
        f"{m} the {ordinal_words(day)}, {y}", f"{ordinal_words(day)} {m.lower()} {year_words(y)}",
    ]


def two_digit_year_ok(d):
    return 1950 <= d.year <= 2049


def draw(r):
    while True:
        d = FIRST + datetime.timedelta(days=r.randrange((LAST - FIRST).days + 1))
        text = r.choice(formats(d, r))
        if ("-" in text[:7] and text[2] == "-" or text.isdigit()) and not two_digit_year_ok(d):
            continue   # a two-digit year reads as 1950-2049 only
        return text, d.isoformat()


def main():
    p = argparse.ArgumentParser(description="Dates in many human formats -> ISO 8601, as source<TAB>target lines.")
    p.add_argument("out", help="the file to write")
    p.add_argument("--num", type=int, default=20000, help="pairs (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same file (default %(default)s)")
    a = p.parse_args()
    r = random.Random(a.seed)
    with open(a.out, "w", encoding="utf-8") as f:
        for _ in range(a.num):
            f.write("\t".join(draw(r)) + "\n")


if __name__ == "__main__":
    main()
