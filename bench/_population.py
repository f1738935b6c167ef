"""A synthetic French municipality: people, households, and how four municipal systems record them.

Names, streets and e-mail domains come from Faker's ``fr_FR`` providers (drawn once into pools so
that a million records take seconds, not minutes). The town has one INSEE code, a postal code per
50,000 inhabitants and one name written several ways. People live in households (a couple, children); the hard
negatives a municipality really has are planted on purpose:
- twins: same surname, birth date, birth place and address, different given names (same sex half
  of the time);
- parent and child with the same given name ("Jean Martin" father and son) at the same address;
- namesakes: same surname, first given name and birth date, born elsewhere and living elsewhere
  in town.

Each person is held by one to four systems (état civil, école/enfance, finances, GED), with the
noise each system typically adds: an old address after a move, accents and case dropped, typos,
used surname after marriage (sometimes in place of the birth name), given names truncated or
reordered, surname and given name inverted, day and month swapped, 01/01 placeholders, missing
birth place, missing contacts, and a few duplicates inside one system. Every record carries the id
of the real person, so clusters can be scored exactly.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace

from faker import Faker
from faker.providers.person.fr_FR import Provider as PersonProvider

from master_data.matching import IdentityRecord

SYSTEMS = ("etat_civil", "ecole", "finances", "ged")
TOWN_CODE = "44109"
TOWN_NAMES = ("Nantes", "NANTES", "nantes")
PEOPLE_PER_POSTAL_CODE = 50_000  # Nantes: 4 codes for 320,000; Marseille: 16 for 870,000
ABROAD = ("99134", "99139", "99350", "99351", "99352", "99109", "99127", "99131", "99216", "99243", "99324")


@dataclass(frozen=True)
class Person:
    pid: int
    birth_name: str
    used_name: str | None
    given_names: tuple[str, ...]
    birth_date: tuple[int, int, int]
    sex: str
    birth_place: str
    address: str
    postal_code: str
    email: str | None
    phone: str | None
    previous_address: str | None = None


class Town:
    """Draws the people of one town; deterministic for a seed."""

    def __init__(self, seed: int, people: int) -> None:
        self.rng = random.Random(seed)
        self.postal_codes = [
            f"44{n:03d}" for n in range(0, 100 * max(2, people // PEOPLE_PER_POSTAL_CODE), 100)
        ]
        fake = Faker("fr_FR")
        fake.seed_instance(seed)
        self.surnames = list(PersonProvider.last_names)
        # Compound and particle surnames, as French registers hold them.
        self.surnames += [f"{a}-{b}" for a, b in zip(self.surnames[:80], self.surnames[80:160], strict=True)]
        self.surnames += [
            f"{p} {n}" for p, n in zip(("de", "Le", "Du", "de La") * 20, self.surnames[160:240], strict=True)
        ]
        self.male = list(PersonProvider.first_names_male)
        self.female = list(PersonProvider.first_names_female)
        self.streets = list(dict.fromkeys(fake.street_name() for _ in range(1500)))
        self.domains = ("orange.fr", "free.fr", "gmail.com", "laposte.net", "sfr.fr", "wanadoo.fr")
        self.next_pid = 0

    # ---------------------------------------------------------------------------------- people

    def _given(self, sex: str, count: int | None = None) -> tuple[str, ...]:
        pool = self.male if sex == "M" else self.female
        count = count or self.rng.choices((1, 2, 3), (0.35, 0.45, 0.2))[0]
        return tuple(self.rng.sample(pool, count))

    def _place(self) -> str:
        roll = self.rng.random()
        if roll < 0.35:
            return TOWN_CODE
        if roll < 0.9:
            department = self.rng.choice([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"])
            return f"{department}{self.rng.randint(1, 400):03d}"
        return self.rng.choice(ABROAD)

    def _date(self, low: int, high: int) -> tuple[int, int, int]:
        return (self.rng.randint(low, high), self.rng.randint(1, 12), self.rng.randint(1, 28))

    def _contact(self, given: str, surname: str) -> tuple[str | None, str | None]:
        plain = _ascii(f"{given}.{surname}").lower().replace(" ", "").replace("'", "")
        email = (
            f"{plain}{self.rng.randint(1, 99)}@{self.rng.choice(self.domains)}"
            if self.rng.random() < 0.6
            else None
        )
        phone = f"06{self.rng.randint(0, 99_999_999):08d}" if self.rng.random() < 0.6 else None
        return email, phone

    def person(self, **fixed: object) -> Person:
        sex = fixed.pop("sex", None) or self.rng.choice("MF")
        surname = fixed.pop("birth_name", None) or self.rng.choice(self.surnames)
        given = fixed.pop("given_names", None) or self._given(sex)
        email, phone = self._contact(given[0], surname)
        values = {
            "pid": self.next_pid,
            "birth_name": surname,
            "used_name": None,
            "given_names": given,
            "birth_date": self._date(1935, 2005),
            "sex": sex,
            "birth_place": self._place(),
            "address": f"{self.rng.randint(1, 180)} {self.rng.choice(self.streets)}",
            "postal_code": self.rng.choice(self.postal_codes),
            "email": email,
            "phone": phone,
        }
        values.update(fixed)
        if self.rng.random() < 0.1:  # moved within the town; some systems still hold the old address
            values["previous_address"] = f"{self.rng.randint(1, 180)} {self.rng.choice(self.streets)}"
        self.next_pid += 1
        return Person(**values)  # type: ignore[arg-type]

    def household(self) -> list[Person]:
        """One to five people at one address: a single person, a couple, or a family with children
        (with, now and then, twins or a son named after his father)."""
        first = self.person()
        members = [first]
        if self.rng.random() < 0.55:
            sex = "F" if first.sex == "M" else "M"
            partner = self.person(sex=sex, address=first.address, postal_code=first.postal_code)
            members.append(partner)
            wife, husband = (partner, first) if sex == "F" else (first, partner)
            if self.rng.random() < 0.6:  # she uses her husband's name
                members[members.index(wife)] = replace(wife, used_name=husband.birth_name)
            youngest = max(first.birth_date[0], partner.birth_date[0]) + 20
            for _ in range(self.rng.choice((0, 0, 1, 2, 2, 3))):
                if youngest > 2023:
                    break
                child_sex = self.rng.choice("MF")
                given = self._given(child_sex)
                if child_sex == "M" and self.rng.random() < 0.05:
                    given = husband.given_names[:1] + given[1:]  # named after his father
                child = self.person(
                    birth_name=husband.birth_name,
                    sex=child_sex,
                    given_names=given,
                    birth_date=self._date(youngest, min(youngest + 6, 2023)),
                    address=first.address,
                    postal_code=first.postal_code,
                )
                members.append(child)
                youngest = child.birth_date[0] + 1  # siblings at least a year apart, twins aside
                if self.rng.random() < 0.02:  # twins
                    twin_sex = child_sex if self.rng.random() < 0.5 else ("F" if child_sex == "M" else "M")
                    twin_given = self._given(twin_sex)
                    while twin_given[0] == child.given_names[0]:
                        twin_given = self._given(twin_sex)
                    members.append(
                        replace(child, pid=self.next_pid, sex=twin_sex, given_names=twin_given, email=None)
                    )
                    self.next_pid += 1
        return members

    def namesake(self, other: Person) -> Person:
        """Another person with the same surname, first given name and birth date."""
        place = self._place()
        while place == other.birth_place:
            place = self._place()
        return self.person(
            birth_name=other.birth_name,
            given_names=other.given_names[:1] + self._given(other.sex, 1),
            sex=other.sex,
            birth_date=other.birth_date,
            birth_place=place,
        )

    def people(self, count: int) -> list[Person]:
        out: list[Person] = []
        while len(out) < count:
            out.extend(self.household())
            if self.rng.random() < 0.01 and out:
                out.append(self.namesake(self.rng.choice(out)))
        return out[:count]


# ------------------------------------------------------------------------------------- noise


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    k = rng.randrange(1, len(text))
    kind = rng.random()
    if kind < 0.4:
        return text[:k] + rng.choice("aeioulnrst") + text[k + 1 :]
    if kind < 0.7:
        return text[:k] + text[k + 1 :]
    if kind < 0.85 and k < len(text) - 1:
        return text[:k] + text[k + 1] + text[k] + text[k + 2 :]
    return text[:k] + rng.choice("aeioulnrst") + text[k:]


class Systems:
    """How each municipal system records a person: which systems hold them and with what noise."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed + 1)
        self.counter = 0

    def holders(self, person: Person) -> list[str]:
        age = 2025 - person.birth_date[0]
        chances = {
            "etat_civil": 0.55 if person.birth_place == TOWN_CODE else 0.35,
            "ecole": 0.9 if age < 18 else 0.3,
            "finances": 0.75 if age >= 18 else 0.35,
            "ged": 0.5,
        }
        chosen = [s for s, p in chances.items() if self.rng.random() < p]
        return chosen or [self.rng.choice(SYSTEMS)]

    def record(self, person: Person, system: str) -> IdentityRecord:
        rng = self.rng
        self.counter += 1
        rate = 0.4 if system == "etat_civil" else 1.0  # the civil registry is the cleanest source
        surname, used = person.birth_name, person.used_name
        given = person.given_names
        year, month, day = person.birth_date
        place: str | None = person.birth_place
        address: str | None = person.address
        if person.previous_address and system != "etat_civil" and rng.random() < 0.4:
            address = person.previous_address
        email, phone = person.email, person.phone
        if system in ("finances", "ged") and used and rng.random() < 0.5:
            surname, used = used, None  # only the used name, in the name field
        if rng.random() < 0.3 * rate:
            surname, given = _ascii(surname).upper(), tuple(_ascii(g).upper() for g in given)
        if rng.random() < 0.06 * rate:
            surname = _typo(rng, surname)
        if rng.random() < 0.06 * rate:
            given = (_typo(rng, given[0]), *given[1:])
        if len(given) > 1 and rng.random() < 0.25 * rate:
            given = given[:1]
        elif len(given) > 1 and rng.random() < 0.05 * rate:
            given = (given[1], given[0], *given[2:])
        if rng.random() < 0.015 * rate:
            surname, given = given[0], (surname, *given[1:])
        date_roll = rng.random()
        if date_roll < 0.02 * rate and day <= 12:
            month, day = day, month
        elif date_roll < 0.035 * rate:
            month, day = 1, 1
        elif date_roll < 0.045 * rate:
            day = min(28, max(1, day + rng.choice((-1, 1, 10, -10))))
        if rng.random() < 0.25 * rate:
            place = None
        if rng.random() < 0.15 * rate:
            address = None
        elif address and rng.random() < 0.2 * rate:
            number, _, street = address.partition(" ")
            address = f"{number}, {_ascii(street).upper().replace('RUE ', 'R. ').replace('AVENUE', 'AV')}"
        if rng.random() < 0.5:
            email = None
        if rng.random() < 0.5:
            phone = None
        return IdentityRecord(
            system,
            f"{system[:2].upper()}{self.counter}",
            birth_name=surname,
            used_name=used if system != "etat_civil" or rng.random() < 0.5 else None,
            given_names=given,
            birth_date=f"{year:04d}-{month:02d}-{day:02d}",
            sex=person.sex if rng.random() > 0.03 * rate else None,
            birth_place=place,
            address=address,
            postal_code=person.postal_code if address else None,
            city=rng.choice(TOWN_NAMES) if address else None,
            email=email,
            phone=phone,
        )


def namesake_groups(people: list[Person]) -> dict[int, int]:
    """Person id -> group id, for the people sharing surname, first given name and birth date with
    someone else (the planted namesakes and any coincidence)."""
    groups: dict[tuple, list[int]] = {}
    for person in people:
        groups.setdefault((person.birth_name, person.given_names[0], person.birth_date), []).append(
            person.pid
        )
    return {pid: n for n, pids in enumerate(g for g in groups.values() if len(g) > 1) for pid in pids}


def population(
    people: int, seed: int = 7, residents: list[Person] | None = None
) -> Iterator[tuple[IdentityRecord, int]]:
    """(record, real person id) for ``people`` people over the four systems, about 2.1 records each
    (``residents``, when given, receives the people drawn)."""
    town = Town(seed, people)
    systems = Systems(seed)
    drawn = town.people(people)
    if residents is not None:
        residents.extend(drawn)
    for person in drawn:
        for system in systems.holders(person):
            yield systems.record(person, system), person.pid
            if systems.rng.random() < 0.01:  # registered twice in the same system
                yield systems.record(person, system), person.pid
