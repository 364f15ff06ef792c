"""A synthetic population with known truth: persons, their life events and their agency records.

Households of adults and children live at postcodes, move, marry (and some take the spouse's
family name); a share of children are twins (same birth date, family name and address) and a
few sons carry their father's given name. Each person then turns up as records at the hospital,
the jobcentre, housing and social care, each written down with the slips real feeds have:
typos, nicknames, given and family name swapped, day and month swapped, a birth date digit
wrong, an old postcode or a maiden name, no national identifier in a configurable share.

Everything is drawn from one seed, so a population is the same on every machine. The truth is
`AgencyRecord.person_key`; nothing else in a record reveals it.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from backbone.contracts import CASE_PERSON_ID, HOSPITAL_NUMBER, JOBSEEKER_ID, TENANT_REF
from backbone.pseudonyms import Pseudonymiser, normalise_postcode, normalise_text


def _words(text: str) -> list[str]:
    """A name list written as running text, one name a word."""
    return text.split()


FEMALE_NAMES = _words(
    "olivia amelia isla ava emily sophia grace mia poppy ella lily evie isabella jessica "
    "charlotte sophie daisy alice freya florence chloe ruby phoebe matilda rosie evelyn "
    "elizabeth margaret catherine rebecca victoria jennifer patricia susan deborah samantha "
    "nicola eleanor harriet jacqueline christine sarah emma hannah laura rachel amy lucy "
    "katie lauren megan bethany holly zara aisha fatima maryam amina priya ananya niamh "
    "siobhan aoife caitlin gemma kerry donna tracey joanne claire helen karen julie wendy "
    "angela dawn lisa michelle kelly paula anne mary jane ruth joan sheila pauline brenda"
)
MALE_NAMES = _words(
    "oliver george harry noah jack leo arthur muhammad oscar charlie jacob thomas henry "
    "william james alexander joshua samuel daniel david edward joseph michael christopher "
    "matthew andrew richard robert stephen anthony peter nicholas benjamin jonathan timothy "
    "frederick gregory kenneth lawrence leonard patrick theodore zachary john mark paul "
    "simon ian gary wayne dean lee craig darren jason scott ryan liam connor callum kieran "
    "ethan lewis adam luke nathan aaron kyle jamie owen rhys dylan ali omar hassan ahmed "
    "rajesh arjun sean ciaran declan kevin brian colin keith graham neil barry derek"
)
SURNAME_STEMS = _words(
    "smith jones williams taylor brown davies evans wilson thomas johnson roberts robinson "
    "thompson wright walker white edwards hughes green hall lewis harris clarke patel jackson "
    "wood turner martin cooper hill ward morris moore clark lee king baker harrison morgan "
    "allen james scott phillips watson davis parker price bennett young griffiths mitchell "
    "kelly cook carter richardson bailey collins bell shaw murphy miller cox richards khan "
    "marshall anderson simpson ellis adams singh begum wilkinson foster chapman powell webb "
    "rogers gray mason ali hunt hussain campbell matthews owen palmer holmes mills barnes "
    "knight lloyd butler russell barker fisher stevens jenkins murray dixon harvey graham "
    "pearson ahmed fletcher walsh kaur gibson howard andrews stewart elliott reynolds saunders"
)
SURNAME_PARTS = (
    (
        "ash",
        "black",
        "brad",
        "brook",
        "cal",
        "chad",
        "craw",
        "dun",
        "elm",
        "fair",
        "fern",
        "gold",
        "hal",
        "hart",
        "hay",
        "kings",
        "lang",
        "mar",
        "mid",
        "north",
        "oak",
        "pen",
        "rad",
        "rams",
        "red",
        "sel",
        "shel",
        "stan",
        "thorn",
        "wal",
        "wes",
        "whit",
        "wins",
    ),
    (
        "worth",
        "ford",
        "ley",
        "ton",
        "field",
        "wood",
        "well",
        "by",
        "combe",
        "ham",
        "land",
        "more",
        "stead",
        "wick",
        "bury",
        "dale",
        "gate",
        "hurst",
        "shaw",
        "thorpe",
    ),
)
NICKNAMES = {  # the ones people use on forms; not the same list as the resolver's
    "elizabeth": ("liz", "beth", "lizzie", "betty"),
    "margaret": ("maggie", "peggy", "meg"),
    "catherine": ("kate", "cathy"),
    "rebecca": ("becky", "becca"),
    "victoria": ("vicky",),
    "jennifer": ("jenny", "jen"),
    "patricia": ("pat", "trish"),
    "susan": ("sue", "susie"),
    "deborah": ("debbie", "debs"),
    "samantha": ("sam", "sammy"),
    "nicola": ("nicky", "nikki"),
    "eleanor": ("ellie", "nell"),
    "jacqueline": ("jackie",),
    "christine": ("chris", "tina"),
    "jessica": ("jess",),
    "isabella": ("bella", "izzy"),
    "florence": ("flo",),
    "william": ("will", "bill", "billy"),
    "james": ("jim", "jimmy", "jamie"),
    "alexander": ("alex",),
    "joshua": ("josh",),
    "samuel": ("sam", "sammy"),
    "daniel": ("dan", "danny"),
    "david": ("dave",),
    "edward": ("ed", "eddie", "ted"),
    "joseph": ("joe",),
    "michael": ("mike", "mick"),
    "christopher": ("chris",),
    "matthew": ("matt",),
    "andrew": ("andy", "drew"),
    "richard": ("rich", "rick", "dick"),
    "robert": ("rob", "bob", "bobby"),
    "stephen": ("steve",),
    "anthony": ("tony",),
    "peter": ("pete",),
    "nicholas": ("nick",),
    "benjamin": ("ben",),
    "jonathan": ("jon",),
    "timothy": ("tim",),
    "frederick": ("fred", "freddie"),
    "gregory": ("greg",),
    "kenneth": ("ken",),
    "lawrence": ("larry",),
    "leonard": ("len", "leo"),
    "patrick": ("pat", "paddy"),
    "theodore": ("theo", "ted"),
    "zachary": ("zach",),
    "thomas": ("tom", "tommy"),
    "henry": ("harry", "hal"),
    "charles": ("charlie",),
    "mary": ("molly", "polly"),
    "john": ("jack", "johnny"),
}
POSTCODE_AREAS = ("LS", "M", "B", "BD", "S", "L", "NE", "SW", "E", "N", "CF", "G", "HU", "NG")
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
AGENCIES = {  # agency -> (id type, share of records)
    "health": (HOSPITAL_NUMBER, 0.4),
    "jobcentre": (JOBSEEKER_ID, 0.2),
    "housing": (TENANT_REF, 0.2),
    "social_care": (CASE_PERSON_ID, 0.2),
}
FIRST_DAY = date(2015, 1, 1)
LAST_DAY = date(2025, 12, 31)


@dataclass(frozen=True)
class PopulationSettings:
    """How many persons, and how noisy their records are (shares are per record)."""

    persons: int = 10_000
    seed: int = 1
    national_id_missing: float = 0.35
    twin_share: float = 0.03  # of children: born with a twin
    junior_share: float = 0.03  # of sons: given their father's given name
    married_name_share: float = 0.6  # of couples: one takes the other's family name
    maiden_name_kept: float = 0.15  # of records after marriage: still the old name
    old_postcode: float = 0.1  # of records after a move: still the old address
    typo: float = 0.06  # per name
    nickname: float = 0.15  # per record of a person with a common nickname
    swapped_names: float = 0.02
    day_month_swapped: float = 0.02
    birth_date_typo: float = 0.015
    birth_date_missing: float = 0.01
    postcode_missing: float = 0.05
    sex_missing: float = 0.05
    sex_wrong: float = 0.005
    records_per_person: tuple[int, ...] = (1, 2, 2, 3, 3, 3, 4, 4, 5, 6)


@dataclass
class Person:
    """A person as they really are; `family_names` and `postcodes` are (from, value) lists."""

    key: str
    given_name: str
    sex: str
    birth_date: date
    national_id: str
    family_names: list[tuple[date, str]]
    postcodes: list[tuple[date, str]] = field(default_factory=list)

    def family_name_on(self, day: date) -> str:
        """The family name the person had on a day."""
        return _value_on(self.family_names, day)

    def postcode_on(self, day: date) -> str:
        """Where the person lived on a day."""
        return _value_on(self.postcodes, day)


@dataclass(frozen=True)
class AgencyRecord:
    """One agency's record of a person as written down (clear text, before a connector)."""

    person_key: str  # the truth: which person this really is
    agency: str
    id_type: str
    local_id: str
    recorded_on: date
    national_id: str | None
    given_name: str
    family_name: str
    birth_date: date | None
    sex: str | None
    postcode: str | None

    def as_subject(self, pseudonymiser: Pseudonymiser) -> dict[str, Any]:
        """The event subject a connector would publish for this record."""
        national_id = pseudonymiser.national_id(self.national_id) if self.national_id else None
        return {
            "record_id": pseudonymiser.record_id(self.agency, self.id_type, self.local_id),
            "id_type": self.id_type,
            "national_id": national_id,
            "family_name": normalise_text(self.family_name),
            "given_name": normalise_text(self.given_name),
            "birth_date": self.birth_date,
            "sex": self.sex,
            "postcode": normalise_postcode(self.postcode) if self.postcode else None,
        }


@dataclass(frozen=True)
class Population:
    """The persons and every agency record of them."""

    settings: PopulationSettings
    persons: list[Person]
    records: list[AgencyRecord]


def generate(settings: PopulationSettings | None = None) -> Population:
    """A population drawn from `settings.seed`: the same settings give the same population."""
    settings = settings or PopulationSettings()
    world = _World(settings, random.Random(settings.seed))  # nosec B311 # seeded synthetic people, repeatable by design
    persons = world.persons()
    records = [record for person in persons for record in world.records_of(person)]
    return Population(settings, persons, records)


def _value_on(history: list[tuple[date, str]], day: date) -> str:
    current = history[0][1]
    for since, value in history:
        if since <= day:
            current = value
    return current


class _World:
    """The random draws, in one place so the order (and so the population) is fixed."""

    def __init__(self, settings: PopulationSettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.used_ids: set[str] = set()
        self.local_ids = itertools.count(1)
        self.popularity: dict[int, list[float]] = {}
        self.surnames = SURNAME_STEMS + [a + b for a in SURNAME_PARTS[0] for b in SURNAME_PARTS[1]]

    # -- persons and households ------------------------------------------------------------
    def persons(self) -> list[Person]:
        people: list[Person] = []
        while len(people) < self.settings.persons:
            people.extend(self.household(f"H{len(people)}"))
        return people[: self.settings.persons]

    def household(self, key: str) -> list[Person]:
        rng = self.rng
        postcodes = self.address_history()
        family = self.surname()
        adults = [self.person(f"{key}-1", family, self.adult_birth_date(), postcodes)]
        if rng.random() < 0.55:
            partner = self.person(f"{key}-2", self.surname(), self.adult_birth_date(), postcodes)
            partner.sex = "F" if adults[0].sex == "M" else "M"
            partner.given_name = self.given_name(partner.sex)
            self.maybe_marry(partner, family)
            adults.append(partner)
        children = self.children(key, family, postcodes, adults) if rng.random() < 0.5 else []
        return adults + children

    def children(
        self, key: str, family: str, postcodes: list[tuple[date, str]], parents: list[Person]
    ) -> list[Person]:
        rng = self.rng
        kids: list[Person] = []
        for number in range(rng.choice((1, 1, 2, 2, 3))):
            born = self.day_between(date(2000, 1, 1), date(2022, 12, 31))
            child = self.person(f"{key}-c{number}", family, born, postcodes)
            fathers = [p for p in parents if p.sex == "M"]
            if child.sex == "M" and fathers and rng.random() < self.settings.junior_share:
                child.given_name = fathers[0].given_name
            kids.append(child)
            if rng.random() < self.settings.twin_share:
                twin = self.person(f"{key}-c{number}t", family, born, postcodes)
                while twin.given_name == child.given_name:
                    twin.given_name = self.given_name(twin.sex)
                kids.append(twin)
        return kids

    def person(
        self, key: str, family: str, born: date, postcodes: list[tuple[date, str]]
    ) -> Person:
        sex = self.rng.choice("FM")
        return Person(
            key, self.given_name(sex), sex, born, self.national_id(), [(born, family)], postcodes
        )

    def maybe_marry(self, partner: Person, family: str) -> None:
        if self.rng.random() < self.settings.married_name_share:
            married_on = self.day_between(FIRST_DAY, LAST_DAY)
            partner.family_names.append((married_on, family))

    def address_history(self) -> list[tuple[date, str]]:
        history = [(date(1900, 1, 1), self.postcode())]
        for _ in range(self.rng.choice((0, 0, 1, 1, 2))):
            nearby = self.rng.random() < 0.3
            district = history[-1][1].split()[0] if nearby else None
            history.append((self.day_between(FIRST_DAY, LAST_DAY), self.postcode(district)))
        return sorted(history)

    # -- values ----------------------------------------------------------------------------
    def given_name(self, sex: str) -> str:
        names = FEMALE_NAMES if sex == "F" else MALE_NAMES
        return self._popular(names).capitalize()

    def surname(self) -> str:
        return self._popular(self.surnames).capitalize()

    def _popular(self, names: list[str]) -> str:
        """Earlier names in a list are commoner: weight 1 / (rank + 15), roughly as real name
        lists fall off (the commonest family name is about 1%, the commonest given name 3%)."""
        weights = self.popularity.get(len(names))
        if weights is None:
            weights = list(itertools.accumulate(1 / (rank + 15) for rank in range(len(names))))
            self.popularity[len(names)] = weights
        return self.rng.choices(names, cum_weights=weights)[0]

    def postcode(self, district: str | None = None) -> str:
        rng = self.rng
        if district is None:
            district = f"{rng.choice(POSTCODE_AREAS)}{rng.randint(1, 30)}"
        inward = f"{rng.randint(0, 9)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
        return f"{district} {inward}"

    def national_id(self) -> str:
        while True:
            letters = "".join(self.rng.choice("ABCEGHJKLMNPRSTWXYZ") for _ in range(2))
            candidate = f"{letters}{self.rng.randint(0, 999_999):06d}{self.rng.choice('ABCD')}"
            if candidate not in self.used_ids:
                self.used_ids.add(candidate)
                return candidate

    def adult_birth_date(self) -> date:
        return self.day_between(date(1945, 1, 1), date(2000, 12, 31))

    def day_between(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, (last - first).days))

    # -- agency records --------------------------------------------------------------------
    def records_of(self, person: Person) -> Iterator[AgencyRecord]:
        for _ in range(self.rng.choice(self.settings.records_per_person)):
            yield self.record(person)

    def record(self, person: Person) -> AgencyRecord:
        rng, s = self.rng, self.settings
        agency = rng.choices(list(AGENCIES), weights=[w for _, w in AGENCIES.values()])[0]
        recorded_on = self.day_between(max(FIRST_DAY, person.birth_date), LAST_DAY)
        record = AgencyRecord(
            person_key=person.key,
            agency=agency,
            id_type=AGENCIES[agency][0],
            local_id=f"{agency[:2].upper()}-{next(self.local_ids):07d}",
            recorded_on=recorded_on,
            national_id=None if rng.random() < s.national_id_missing else person.national_id,
            given_name=self.written_given_name(person.given_name),
            family_name=self.written_family_name(person, recorded_on),
            birth_date=self.written_birth_date(person.birth_date),
            sex=self.written_sex(person.sex),
            postcode=self.written_postcode(person, recorded_on),
        )
        if rng.random() < s.swapped_names:
            record = replace(record, given_name=record.family_name, family_name=record.given_name)
        return record

    def written_given_name(self, name: str) -> str:
        nicknames = NICKNAMES.get(name.lower())
        if nicknames and self.rng.random() < self.settings.nickname:
            name = self.rng.choice(nicknames).capitalize()
        return self.typo(name) if self.rng.random() < self.settings.typo else name

    def written_family_name(self, person: Person, recorded_on: date) -> str:
        name = person.family_name_on(recorded_on)
        if len(person.family_names) > 1 and self.rng.random() < self.settings.maiden_name_kept:
            name = person.family_names[0][1]
        return self.typo(name) if self.rng.random() < self.settings.typo else name

    def written_birth_date(self, born: date) -> date | None:
        rng, s = self.rng, self.settings
        draw = rng.random()
        if draw < s.birth_date_missing:
            return None
        draw -= s.birth_date_missing
        if draw < s.day_month_swapped and born.day <= 12 and born.day != born.month:
            return date(born.year, born.day, born.month)
        draw -= s.day_month_swapped
        if draw < s.birth_date_typo:
            return self.date_typo(born)
        return born

    def date_typo(self, born: date) -> date:
        for _ in range(10):
            part = self.rng.choice(("day", "month", "year"))
            try:
                if part == "day":
                    return born.replace(day=self.rng.randint(1, 28))
                if part == "month":
                    return born.replace(month=self.rng.randint(1, 12))
                return born.replace(year=born.year + self.rng.choice((-10, -1, 1, 10)))
            except ValueError:  # 29 February in a year without one: draw again
                continue
        return born

    def written_sex(self, sex: str) -> str | None:
        draw = self.rng.random()
        if draw < self.settings.sex_missing:
            return None
        if draw < self.settings.sex_missing + self.settings.sex_wrong:
            return "M" if sex == "F" else "F"
        return sex

    def written_postcode(self, person: Person, recorded_on: date) -> str | None:
        if self.rng.random() < self.settings.postcode_missing:
            return None
        postcode = person.postcode_on(recorded_on)
        moved = [p for since, p in person.postcodes if since <= recorded_on]
        if len(moved) > 1 and self.rng.random() < self.settings.old_postcode:
            postcode = moved[-2]
        return postcode

    def typo(self, name: str) -> str:
        """One keying slip: a letter substituted, dropped, doubled or two swapped."""
        if len(name) < 3:
            return name
        rng = self.rng
        at = rng.randrange(1, len(name) - 1)  # first letters are rarely mistyped
        kind = rng.choice(("substitute", "drop", "double", "transpose"))
        if kind == "substitute":
            return name[:at] + rng.choice(string.ascii_lowercase) + name[at + 1 :]
        if kind == "drop":
            return name[:at] + name[at + 1 :]
        if kind == "double":
            return name[:at] + name[at] + name[at:]
        return name[:at] + name[at + 1] + name[at] + name[at + 2 :]
