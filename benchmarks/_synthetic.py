"""Deterministic synthetic facts and paraphrased questions for the latency benchmark.

Facts are template sentences about fictitious people, places, organisations and events, with
names built from syllables, so the vocabulary grows with the corpus the way real notes do
(many rare names, a few common words) and BM25 posting lists have realistic lengths. A
person gets several facts (birth, job, books, ...), so a name alone matches several
memories and the question's other words must pick the right one. Questions paraphrase the
fact ("Whom did X marry?" for "X married Y") instead of copying it.

The stream depends only on the seed: the first n facts are the same whatever total is asked
for, so one embedding cache serves every corpus size.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

SYLLABLES = (
    "ka lo mi ren tal vor si dun bel ar en is ot ul mar nek sha tor vin zel ha ri co pe lu ga mo te "
    "da fi no bra cle dra fen gor hal jas kel lim mor nas pil quin ros sen tam val wen yor zan"
).split()
CITY_SUFFIXES = "haven ford wick mouth stad burg field port dale mere by ton holm ridge".split()
COUNTRY_SUFFIXES = "ia land stan mark ora enia".split()
MONTHS = "January February March April May June July August September October November December".split()
PROFESSIONS = (
    "glassblower|cartographer|marine biologist|civil engineer|violin maker|pastry chef|tax lawyer|beekeeper|"
    "translator|architect|typographer|geologist|nurse|airline pilot|watchmaker|botanist|archivist|sculptor|"
    "journalist|librarian|pharmacist|surveyor|locksmith|radio presenter|economist|veterinarian|carpenter|"
    "stonemason|seismologist|florist|photographer|composer|dentist|brewer|shipwright|meteorologist|puppeteer|"
    "mathematician|tailor|ceramicist|astronomer|park ranger|jeweller|software developer|midwife|chess coach|"
    "sommelier|bookbinder|falconer|perfumer"
).split("|")
FIELDS = (
    "volcanology|medieval poetry|tidal energy|bird migration|urban planning|ancient coinage|glacier retreat|"
    "folk music|soil chemistry|maritime law|early cinema|desert agriculture|railway history|coral reefs|"
    "textile dyes|cryptography|language acquisition|mountain weather|beetle taxonomy|bridge design|"
    "tea cultivation|sleep research|sea ice|clockwork automata|fungal networks|river deltas|public health|"
    "opera staging|paper conservation|solar navigation|child nutrition|quantum optics|wind erosion|"
    "monastic libraries|wetland restoration|bronze casting|street lighting|fishing rights|vaccine storage|"
    "cave paintings"
).split("|")
COLLECTIONS = (
    "antique maps|pocket watches|seashells|vinyl records|typewriters|porcelain cups|fountain pens|"
    "meteorite fragments|tin toys|botanical prints|old postcards|chess sets|lighthouse paintings|glass marbles|"
    "railway tickets|carved masks|music boxes|rare stamps|brass compasses|silk scarves"
).split("|")
ORG_KINDS = (
    "Institute|Foundation|Laboratories|Press|Trust|Observatory|Conservatory|Shipping Company|Textile Mill|"
    "Savings Bank|General Hospital|Museum|Brewery|Theatre|Robotics Group|Seed Bank|Archive|Orchestra|"
    "Ferry Line|Glassworks"
).split("|")
EVENT_KINDS = (
    "Lantern Festival|Book Fair|Regatta|Jazz Week|Cheese Market|Marathon|Film Festival|Kite Fair|Science Fair|"
    "Harvest Fair|Chess Open|Choir Contest"
).split("|")
ADJECTIVES = (
    "silent|golden|broken|hidden|northern|last|burning|patient|crooked|distant|hollow|quiet|restless|salted|"
    "forgotten|painted|bitter|velvet|iron|wandering|frozen|borrowed|secret|narrow|shining|crimson|lonely|"
    "drowned|careful|winter"
).split("|")
NOUNS = (
    "harbour|lantern|orchard|compass|river|archive|garden|mirror|tide|chapel|market|bridge|cellar|meadow|"
    "engine|window|ledger|kingdom|island|clock|forest|letter|station|harvest|lighthouse|violin|staircase|"
    "cathedral|desert|tower|ship|map|feather|kitchen|sparrow|monsoon|atlas|furnace|bell|quarry"
).split("|")
TOWN_ADJECTIVES = "small coastal hill mining market river border fishing university mountain lake".split()


@dataclass(frozen=True)
class Fact:
    """One memory text and the paraphrased questions it answers."""

    text: str
    relation: str
    questions: tuple[str, ...]


@dataclass
class _Person:
    name: str
    used: set[str] = field(default_factory=set)


@dataclass
class _Entity:
    """A city or an organisation; `used` holds the relations already stated about it."""

    name: str
    home: str  # country of a city, city of an organisation
    used: set[str] = field(default_factory=set)


class FactGenerator:
    """A seeded stream of distinct facts; `take(n)` returns the first n of the stream."""

    PERSON_RELATIONS = ("birth", "job", "book", "award", "spouse", "study", "hobby", "lead")
    NEW_PERSON_PROBABILITY = 0.3

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"lifelong-synthetic-facts-{seed}")
        self._names: set[str] = set()
        self.countries = [self._unique_name(lambda: self._word(2, 3) + self.rng.choice(COUNTRY_SUFFIXES)) for _ in range(40)]
        self.people: list[_Person] = []
        self.cities: list[_Entity] = []
        self.orgs: list[_Entity] = []
        self._texts: set[str] = set()
        self._facts: list[Fact] = []
        self._relations: dict[str, Callable[[], Fact]] = {
            **{name: self._person_fact for name in self.PERSON_RELATIONS},
            "population": lambda: self._city_fact("population"),
            "founded": lambda: self._city_fact("founded"),
            "org": self._org_fact,
            "event": self._event_fact,
        }
        weights = {"population": 1.0, "founded": 0.8, "org": 1.2, "event": 1.0}
        self._choices = list(self._relations)
        self._weights = [weights.get(name, 1.2) for name in self._choices]

    # -- vocabulary ----------------------------------------------------------------------

    def _word(self, low: int, high: int) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(low, high))).capitalize()

    def _unique_name(self, make: Callable[[], str]) -> str:
        """Names never repeat across entities, so a question names exactly one subject."""
        while True:
            name = make()
            if name not in self._names:
                self._names.add(name)
                return name

    def _person_name(self) -> str:
        return self._unique_name(lambda: f"{self._word(2, 2)} {self._word(2, 3)}")

    def _new_person(self) -> _Person:
        person = _Person(self._person_name())
        self.people.append(person)
        return person

    def _new_city(self) -> _Entity:
        city = _Entity(self._unique_name(lambda: self._word(2, 2) + self.rng.choice(CITY_SUFFIXES)), self.rng.choice(self.countries))
        self.cities.append(city)
        return city

    def _city(self) -> _Entity:
        """Cities recur across facts (people are born in and move to the same towns)."""
        if len(self.cities) < 50 or self.rng.random() < 0.15:
            return self._new_city()
        return self.rng.choice(self.cities)

    def _new_org(self) -> _Entity:
        city = self._city()
        org = _Entity(
            self._unique_name(lambda: f"{self.rng.choice([self._word(2, 3), city.name])} {self.rng.choice(ORG_KINDS)}"),
            city.name,
        )
        self.orgs.append(org)
        return org

    def _org(self) -> _Entity:
        if len(self.orgs) < 30 or self.rng.random() < 0.3:
            return self._new_org()
        return self.rng.choice(self.orgs)

    def _year(self) -> int:
        return self.rng.randint(1890, 2024)

    def _date(self) -> str:
        return f"{self.rng.randint(1, 28)} {self.rng.choice(MONTHS)} {self._year()}"

    def _title(self) -> str:
        r = self.rng
        shapes = (
            lambda: f"The {r.choice(ADJECTIVES).capitalize()} {r.choice(NOUNS).capitalize()}",
            lambda: f"{r.choice(NOUNS).capitalize()} of the {r.choice(ADJECTIVES).capitalize()} {r.choice(NOUNS).capitalize()}",
            lambda: f"A {r.choice(NOUNS).capitalize()} in {self._city().name}",
        )
        return r.choice(shapes)()

    def _award(self, topic: str) -> str:
        r = self.rng
        shapes = (
            lambda: f"{self._word(2, 3)} Prize for {topic.title()}",
            lambda: f"Golden {r.choice(NOUNS).capitalize()} Award",
            lambda: f"{r.choice(self.countries)} Medal for {topic.title()}",
        )
        return r.choice(shapes)()

    # -- facts -------------------------------------------------------------------------------

    def _pick_person(self) -> tuple[_Person, str]:
        """An existing person with a relation not yet stated, or a new person."""
        if self.people and self.rng.random() > self.NEW_PERSON_PROBABILITY:
            for _ in range(4):
                person = self.rng.choice(self.people)
                free = [r for r in self.PERSON_RELATIONS if r not in person.used]
                if free:
                    return person, self.rng.choice(free)
        return self._new_person(), self.rng.choice(self.PERSON_RELATIONS)

    def _person_fact(self) -> Fact:
        r = self.rng
        person, relation = self._pick_person()
        p = person.name
        person.used.add(relation)
        if relation == "birth":
            city, date = self._city(), self._date()
            text = r.choice((
                f"{p} was born in {city.name}, {city.home}, on {date}.",
                f"Born on {date} in {city.name}, {p} grew up in {city.home}.",
            ))
            questions = (f"Where was {p} born?", f"What is the birthplace of {p}?", f"When is {p}'s birthday?",
                         f"In which town did {p} come into the world?")
        elif relation == "job":
            job, org = r.choice(PROFESSIONS), self._org()
            text = r.choice((
                f"{p} works as a {job} at the {org.name} in {org.home}.",
                f"{p} is a {job} employed by the {org.name}.",
            ))
            questions = (f"What does {p} do for a living?", f"What is {p}'s occupation?", f"Who employs {p}?",
                         f"Where does {p} have a job?")
        elif relation == "book":
            year, title, topic = self._year(), self._title(), r.choice(FIELDS)
            text = r.choice((
                f'In {year}, {p} published "{title}", a book about {topic}.',
                f'{p} is the author of "{title}", a {year} study of {topic}.',
            ))
            questions = (f"What book did {p} write?", f"Which title did {p} publish in {year}?",
                         f"What did {p} write about {topic}?", f"Name a work by {p}.")
        elif relation == "award":
            year, topic = self._year(), r.choice(FIELDS)
            award = self._award(topic)
            text = r.choice((
                f"{p} received the {award} in {year} for research on {topic}.",
                f"In {year} the {award} went to {p} for work on {topic}.",
            ))
            questions = (f"Which prize was {p} given?", f"What honour did {p} win in {year}?",
                         f"Has {p} been recognised for studying {topic}?")
        elif relation == "spouse":
            other, job, city, year = self._person_name(), r.choice(PROFESSIONS), self._city(), self._year()
            text = f"{p} married {other}, a {job} from {city.name}, in {year}."
            questions = (f"Who is {p}'s husband or wife?", f"Whom did {p} wed?", f"Who is the spouse of {p}?")
        elif relation == "study":
            year, city, topic = self._year(), self._city(), r.choice(FIELDS)
            text = f"In {year}, {p} moved to {city.name} to study {topic} at the University of {city.name}."
            questions = (f"Where did {p} go to university?", f"What subject did {p} major in?",
                         f"Why did {p} relocate to {city.name}?")
        elif relation == "hobby":
            things, count = r.choice(COLLECTIONS), r.randint(12, 4000)
            text = f"{p} collects {things} and owns {count} of them."
            questions = (f"What does {p} collect?", f"How many {things} does {p} have?", f"What is {p}'s hobby?")
        else:  # lead
            org = next((o for o in self.orgs[-20:] if "lead" not in o.used), None) or self._new_org()
            org.used.add("lead")
            year = self._year()
            text = r.choice((
                f"{p} has been the director of the {org.name} since {year}.",
                f"Since {year}, the {org.name} has been led by {p}.",
            ))
            questions = (f"Who runs the {org.name}?", f"Who heads the {org.name}?", f"Since when has {p} managed the {org.name}?")
        return Fact(text, relation, questions)

    def _city_fact(self, relation: str) -> Fact:
        r = self.rng
        city = next((c for c in self.cities[-20:] if relation not in c.used), None) or self._new_city()
        city.used.add(relation)
        c = city.name
        if relation == "population":
            text = f"{c} is a {r.choice(TOWN_ADJECTIVES)} town in {city.home} with {r.randint(800, 900_000):,} inhabitants."
            questions = (f"How many people live in {c}?", f"What is the population of {c}?", f"In which country is {c}?")
        else:
            founder = self._person_name()
            text = f"{c} was founded in {r.randint(900, 1900)} by the explorer {founder}."
            questions = (f"Who founded {c}?", f"When was {c} established?", f"Who settled {c} first?")
        return Fact(text, relation, questions)

    def _org_fact(self) -> Fact:
        org = next((o for o in self.orgs[-20:] if "org" not in o.used), None) or self._new_org()
        org.used.add("org")
        text = f"The {org.name} was established in {self._year()} in {org.home} and has {self.rng.randint(3, 25_000):,} employees."
        questions = (f"How many people work at the {org.name}?", f"Where is the {org.name} based?",
                     f"When was the {org.name} set up?")
        return Fact(text, "org", questions)

    def _event_fact(self) -> Fact:
        city, date = self._city(), self._date()
        event = f"{date.split()[-1]} {city.name} {self.rng.choice(EVENT_KINDS)}"
        text = f"The {event} took place in {city.name} on {date} and drew {self.rng.randint(150, 250_000):,} visitors."
        questions = (f"When was the {event} held?", f"How many people attended the {event}?",
                     f"What date did the {event} happen?")
        return Fact(text, "event", questions)

    def take(self, n: int) -> list[Fact]:
        """The first n distinct facts of this seed's stream."""
        while len(self._facts) < n:
            relation = self.rng.choices(self._choices, self._weights)[0]
            fact = self._relations[relation]()
            if fact.text not in self._texts:
                self._texts.add(fact.text)
                self._facts.append(fact)
        return self._facts[:n]


def sample_queries(facts: list[Fact], count: int, seed: int) -> list[tuple[str, int]]:
    """`count` (question, fact index) pairs about distinct facts, one paraphrase each."""
    rng = random.Random(f"lifelong-synthetic-queries-{seed}-{len(facts)}")
    indices = rng.sample(range(len(facts)), min(count, len(facts)))
    return [(rng.choice(facts[i].questions), i) for i in indices]
