"""Mapping throughput and load time.

Throughput: the realistic mapping of ``bench/fixtures/mapping/registration.yaml`` (25 top-level
fields, a code table, date transforms, an array of 3 children) applied to varied documents on one
core, beside ``handwritten()``, the Python function an engineer would write for the same output
from the same input (the practical limit). Both are checked to give identical output on every
document before anything is timed. Load time: every shipped mapping file (tables, fragments,
schemas and WSDLs included) loaded in a fresh process.

    .venv/bin/python bench/mapping.py [--documents 200] [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit  # noqa: E402
from hub.mapping import load_mapping  # noqa: E402
from hub.mapping.transforms import french_surname  # noqa: E402

FIXTURE = ROOT / "bench" / "fixtures" / "mapping" / "registration.yaml"
SEX = {"M": "1", "F": "2"}
LEVELS = {
    "petite_section": "PS",
    "moyenne_section": "MS",
    "grande_section": "GS",
    "cp": "CP",
    "ce1": "CE1",
    "ce2": "CE2",
    "cm1": "CM1",
    "cm2": "CM2",
}
_NOT_DIGITS = str.maketrans("", "", "+ ().-")

SURNAMES = ["Martin", "de la Fontaine", "N'Diaye", "Lefèvre", "García López", "Dupont-Durand", "d'Alembert"]
GIVEN = ["Élodie", "Jean", "Marie", "Léa", "Tom", "Zoé", "Hugo", "Inès", "Jean-Pierre"]


def documents(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for n in range(count):
        children = [
            {
                "given_names": rng.sample(GIVEN, rng.randint(1, 2)),
                "birth_date": f"20{rng.randint(10, 22)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                "sex": rng.choice("MF"),
                **({"birth_name": rng.choice(SURNAMES)} if rng.random() < 0.3 else {}),
            }
            for _ in range(3)
        ]
        address = {"line1": f" {n} rue des Lilas ", "postal_code": "33000", "city": "Bordeaux"}
        if rng.random() < 0.5:
            address["line2"] = "Bâtiment B"
        if rng.random() < 0.5:
            address["country"] = "FR"
        citizen = {
            "birth_name": rng.choice(SURNAMES),
            "given_names": rng.sample(GIVEN, rng.randint(1, 3)),
            "birth_date": f"19{rng.randint(60, 99)}-1{rng.randint(0, 2)}-2{rng.randint(0, 8)}",
            "sex": rng.choice("MF"),
            "birth_place": {"insee_code": "75056", "city": "Paris"},
            "email": " Parent.Name@Example.org ",
            "phone": "+33 6 12 34 56 78",
            "address": address,
        }
        if rng.random() < 0.4:
            citizen["used_name"] = rng.choice(SURNAMES)
        data = {
            "school_year": "2026-2027",
            "school": " École Jules Ferry ",
            "level": rng.choice(list(LEVELS)),
            "quotient_familial": str(rng.randint(300, 2000)),
            "children": children,
        }
        if rng.random() < 0.5:
            data["canteen"] = rng.random() < 0.5
        docs.append({"request": {"id": f"req-{n}"}, "citizen": citizen, "data": data, "steps": {}})
    return docs


def _french_date(text: str) -> str:
    return datetime.strptime(text, "%Y-%m-%d").strftime("%d/%m/%Y")


def handwritten(doc: dict[str, Any]) -> dict[str, Any]:
    """The same output, written by hand: direct subscripts, the same checks and conversions."""
    citizen, data = doc["citizen"], doc["data"]
    address = citizen["address"]
    out: dict[str, Any] = {"reference": doc["request"]["id"], "channel": "PORTAIL", "kind": "school"}
    out["birth_name"] = french_surname(citizen["birth_name"])
    if citizen.get("used_name"):
        out["used_name"] = french_surname(citizen["used_name"])
    out["first_names"] = " ".join(citizen["given_names"])
    out["first_given_name"] = citizen["given_names"][0].upper()
    out["birth_date"] = _french_date(citizen["birth_date"])
    out["sex"] = SEX[citizen["sex"]]
    out["birth_place"] = citizen["birth_place"]["insee_code"]
    if citizen["birth_place"].get("city"):
        out["birth_city"] = citizen["birth_place"]["city"].upper()
    if citizen.get("email"):
        out["email"] = citizen["email"].strip().lower()
    if citizen.get("phone"):
        out["phone"] = citizen["phone"].translate(_NOT_DIGITS)
    out["line1"] = address["line1"].strip()
    if address.get("line2"):
        out["line2"] = address["line2"].strip()
    out["postal_code"] = address["postal_code"]
    out["city"] = address["city"].upper()
    out["country"] = address.get("country") or "FR"
    out["school_year"] = data["school_year"]
    out["school"] = data["school"].strip()
    out["level"] = LEVELS[data["level"]]
    if data.get("quotient_familial"):
        out["quotient_familial"] = int(data["quotient_familial"])
    out["canteen"] = ("O" if data["canteen"] else "N") if "canteen" in data else "N"
    children = data.get("children") or []
    out["children_count"] = len(children)
    mapped = []
    for child in children:
        item = {"first_names": " ".join(child["given_names"])}
        item["birth_name"] = french_surname(child.get("birth_name") or citizen["birth_name"])
        item["birth_date"] = _french_date(child["birth_date"])
        if child.get("sex"):
            item["sex"] = SEX[child["sex"]]
        mapped.append(item)
    if mapped:
        out["children"] = mapped
    return out


def throughput(function: Any, docs: list[dict[str, Any]], seconds: float) -> float:
    """Documents per second, mapping the list over and over for about ``seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        for doc in docs:
            function(doc)
        done += len(docs)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


LOAD_SCRIPT = """
import time, sys
sys.path.insert(0, {root!r})
from hub.mapping import load_mappings
from pathlib import Path
start = time.perf_counter()
mappings = load_mappings(Path({root!r}) / "mappings")
print(len(mappings), time.perf_counter() - start)
"""


def load_time() -> tuple[int, float]:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT.format(root=str(ROOT))], capture_output=True, text=True, check=True
    )
    count, seconds = result.stdout.split()
    return int(count), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    mapping = load_mapping(FIXTURE)
    docs = documents(args.documents)
    for doc in docs:
        expected, actual = handwritten(doc), mapping.apply(doc)
        if expected != actual:
            sys.exit(
                f"engine and hand-written outputs differ for {doc['request']['id']}:\n{expected}\n{actual}"
            )
    leaves = sum(1 for f in mapping.spec.fields.values() if f.fields is None) + 4 * 3
    print(
        f"# {len(docs)} documents, {len(mapping.spec.fields)} top-level fields ({leaves} values written "
        f"per document), outputs identical; best of {args.rounds} rounds of {args.seconds} s",
        file=sys.stderr,
    )
    engine = max(throughput(mapping.apply, docs, args.seconds) for _ in range(args.rounds))
    baseline = max(throughput(handwritten, docs, args.seconds) for _ in range(args.rounds))
    emit("mapping.engine.docs_per_s", engine, "docs/s")
    emit("mapping.handwritten.docs_per_s", baseline, "docs/s")
    emit("mapping.engine.vs_handwritten", engine / baseline, "ratio")
    count, seconds = min((load_time() for _ in range(3)), key=lambda pair: pair[1])
    print(
        f"# {count} shipped mapping files (with tables, fragments, schemas, WSDL), fresh process, best of 3",
        file=sys.stderr,
    )
    emit("mapping.load_all.ms", seconds * 1000, "ms")
    emit("mapping.load_all.files", count, "files")


if __name__ == "__main__":
    main()
