"""The demo firm's people: HRIS employees, company holidays, time off, PSA users."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

REGIONS = ("NA", "EMEA", "APAC")
REGION_LOCATIONS = {"NA": ("New York", "Toronto"), "EMEA": ("London", "Berlin"),
                    "APAC": ("Singapore", "Sydney")}
REGION_CURRENCY = {"NA": "USD", "EMEA": "EUR", "APAC": "AUD"}
ROLES = ("Analyst", "Consultant", "Senior Consultant", "Manager", "Director")
ROLE_COST = {"Analyst": 45, "Consultant": 60, "Senior Consultant": 80, "Manager": 100,
             "Director": 130}
OPS_TITLES = ("Finance Specialist", "People Partner", "Operations Coordinator", "IT Support")
EMAIL_DOMAIN = "psops-demo.com"

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farah", "Gus", "Hana", "Ivan", "Jade", "Kofi",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wes", "Xin", "Yara", "Zane", "Aiko", "Bruno", "Clara", "Diego", "Emil", "Freya", "Gita",
    "Hugo", "Ines", "Jonas", "Kira", "Liam", "Mina", "Nils", "Olga", "Pablo", "Rhea", "Sami",
)
LAST_NAMES = (
    "Adams", "Bauer", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kim", "Lopez", "Martin", "Nakamura", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Ueda",
    "Vogel", "Wong", "Yilmaz", "Zhang", "Novak", "Moreau", "Larsen", "Kowalski", "Singh", "Reyes",
)


@dataclass
class Person:
    """One employee, with what the generators need beyond the HRIS record."""

    index: int
    hris_id: str
    psa_id: int
    name: str
    email: str
    psa_email: str
    role: str
    region: str
    department: str
    hire: date
    termination: date | None
    std_hours: float | None  # None = empty in HRIS
    target: int | None
    work_factor: float  # hours worked per day / standard
    billable_share: float
    habit: str = "on_time"  # on_time, late, missing, draft
    leave_days: dict[date, float] = field(default_factory=dict)  # day -> fraction of day off

    @property
    def billable_staff(self) -> bool:
        return self.department != "Operations"

    def ref(self) -> dict:
        return {"id": self.psa_id, "name": self.name, "email": self.psa_email}


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def company_holidays(first: date, last: date) -> list[dict]:
    """Company-wide holidays between two dates, as HRIS whos_out entries."""
    days: list[tuple[date, str]] = []
    for year in range(first.year, last.year + 1):
        sunday = easter(year)
        days += [
            (date(year, 1, 1), "New Year's Day"),
            (sunday - timedelta(days=2), "Good Friday"),
            (sunday + timedelta(days=1), "Easter Monday"),
            (date(year, 5, 1), "Labour Day"),
            (date(year, 12, 25), "Christmas Day"),
            (date(year, 12, 26), "Boxing Day"),
        ]
    days = sorted(d for d in days if first <= d[0] <= last)
    return [{"id": 9000 + n, "type": "holiday", "name": name, "start": day.isoformat(),
             "end": day.isoformat()} for n, (day, name) in enumerate(days, start=1)]


def _unique_names(rng: random.Random, count: int) -> list[str]:
    pairs = [(f, last) for f in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(pairs)
    if count > len(pairs):
        pairs += [(f, f"{last}{n}") for n in range(2, count // len(pairs) + 3)
                  for f, last in pairs[: len(pairs)]]
    return [f"{f} {last}" for f, last in pairs[:count]]


def make_people(rng: random.Random, count: int, today: date, start: date) -> list[Person]:
    """`count` employees; the first few indices carry the documented special cases."""
    names = _unique_names(rng, count)
    people = []
    for index, name in enumerate(names):
        region = REGIONS[index % 3]
        ops = index % 10 == 9
        role = "Operations" if ops else ROLES[min(4, int(rng.random() ** 1.6 * 5))]
        hire = start - timedelta(days=rng.randint(60, 2500))
        first, last = name.lower().split(" ", 1)
        email = f"{first}.{last}@{EMAIL_DOMAIN}"
        people.append(Person(
            index=index, hris_id=str(101 + index), psa_id=3001 + index, name=name,
            email=email, psa_email=email, role=role, region=region,
            department="Operations" if ops else ("Engineering" if index % 4 == 1 else
                                                 "Consulting"),
            hire=hire, termination=None, std_hours=40.0,
            target=None if ops else rng.choice((70, 75, 80, 85)),
            work_factor=1.0, billable_share=0.0 if ops else rng.uniform(0.55, 0.95),
        ))
    _apply_special_cases(rng, people, today, start)
    return people


def _apply_special_cases(rng: random.Random, people: list[Person], today: date,
                         start: date) -> None:
    """Terminations, hires, odd hours, habits and case-different e-mails."""
    billable = [p for p in people if p.billable_staff]
    for n, person in enumerate(billable[3:9]):  # terminated during the year
        person.termination = today - timedelta(days=20 + 45 * n)
    for n, person in enumerate(billable[9:15]):  # recent hires
        person.hire = today - timedelta(days=10 + 12 * n)
    billable[15].std_hours = None  # empty standard hours
    billable[16].std_hours = 0.0
    billable[17].std_hours = 20.0
    billable[18].std_hours = 30.0
    for person in billable[19:23]:  # over-utilised
        person.work_factor, person.billable_share = 1.25, 0.98
    for person in billable[23:27]:  # under-utilised
        person.billable_share = 0.2
    for person in billable[27:31]:
        person.habit = "late"
    for person in billable[31:33]:
        person.habit = "missing"
    for person in billable[33:35]:
        person.habit = "draft"
    for person in billable[35:40]:  # PSA e-mail differs from HRIS only by case
        first, rest = person.email.split(".", 1)
        person.psa_email = first.capitalize() + "." + rest.replace("psops-demo", "PSOps-Demo")
    del rng, start


def employee_record(person: Person) -> dict:
    """The HRIS custom-report row: every value a string or null."""
    location = REGION_LOCATIONS[person.region][person.index % 2]
    std = None if person.std_hours is None else f"{person.std_hours:g}"
    title = person.role if person.billable_staff else OPS_TITLES[person.index % 4]
    return {
        "id": person.hris_id, "displayName": person.name, "workEmail": person.email,
        "jobTitle": title, "department": person.department, "location": location,
        "status": "Inactive" if person.termination else "Active",
        "hireDate": person.hire.isoformat(),
        "terminationDate": person.termination.isoformat() if person.termination else "0000-00-00",
        "customStandardHoursPerWeek": std,
        "customCostRate": f"{ROLE_COST.get(person.role, 40) * (1 + person.index % 7 / 20):.2f}",
        "customTargetUtilization": None if person.target is None else str(person.target),
    }
