"""Unsupervised estimation of the model: u from random pairs, m by EM in blocked sessions, the prior.

The classic pitfall of EM on the final candidate pairs is that blocking makes non-matches agree on
the blocked fields, so their u is not the population's and the weights come out wrong (and when
blocking is tight, the candidates are nearly all matches and EM has nothing to separate). The
estimation here follows the method Splink documents:

1. u = level frequencies among random pairs (almost all non-matches);
2. m by EM with u fixed, in *sessions*: pairs sharing the exact birth date, then pairs sharing
   surname and first given name. Within a session the blocked fields are left out (their
   agreement is forced), the other fields' non-matches behave like random pairs, so EM with fixed
   u is consistent. Each field's m is the mean of the sessions that could estimate it;
3. the prior (share of matches among all pairs): a session finds lambda_s * N_s matches among its N_s
   pairs, which are the share m(blocked fields exact) of all matches (m from the other session).

Sessions run on a random sample of records when the import is large: m and the prior do not depend
on the population size, and EM on a few hundred thousand pairs is as good as on millions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from master_data.blocking import candidate_pairs, namesake_keys
from master_data.comparison import FIELDS, MISSING, compare
from master_data.features import Features
from master_data.model import MatchModel, fixed_weights_prior, frequencies, run_em

_FIELD_INDEX = {spec.name: k for k, spec in enumerate(FIELDS)}


@dataclass(frozen=True)
class Session:
    """Pairs blocked on some traits; their fields are not estimated in the session."""

    name: str
    columns: tuple[str, ...]
    fields: tuple[str, ...]


# Not "same surname" alone: its pairs are dominated by households (same surname, same address,
# different given names and dates), and EM would learn "same household" instead of "same person".
SESSIONS = (
    Session("same_birth_date", ("birth_date",), ("birth_date",)),
    Session("same_names", ("surname_core", "given_first"), ("birth_name", "given_names")),
)


def _session_keys(
    features: Features, columns: tuple[str, ...], sample: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(position in the sample, key) of the sampled records having every column of the session."""
    key = np.zeros(len(sample), dtype=np.int64)
    present = np.ones(len(sample), dtype=bool)
    for column in columns:
        if column == "birth_date":
            full = (features.month != 0) & (features.day != 0)
            values = np.where(full, features.year * 10000 + features.month * 100 + features.day, 0)
        else:
            values = features.codes[column]
        chosen = values[sample].astype(np.int64)
        present &= chosen != 0
        key = key * (int(values.max(initial=0)) + 1) + chosen
    positions = np.flatnonzero(present)
    return positions, key[positions]


def _sample(
    n: int, split: int | None, records: int, rng: np.random.Generator
) -> tuple[np.ndarray, int | None]:
    """A random subset of records (sorted) and, for a link, where the right side starts in it."""
    if n <= records:
        return np.arange(n), split
    if split is None:
        return np.sort(rng.choice(n, records, replace=False)), None
    share = records / n
    left = np.sort(rng.choice(split, max(1, int(split * share)), replace=False))
    right = np.sort(rng.choice(np.arange(split, n), max(1, int((n - split) * share)), replace=False))
    return np.concatenate([left, right]), len(left)


def estimate_from_features(
    features: Features,
    split: int | None = None,
    *,
    u_sample: int = 500_000,
    session_records: int = 150_000,
    session_pairs: int = 2_000_000,
    max_block: int = 2_000,
    seed: int = 1,
) -> MatchModel:
    """The model for these records (see the module docstring for the method)."""
    rng = np.random.default_rng(seed)
    n = features.n
    if split is None:
        ri, rj = rng.integers(0, n, u_sample), rng.integers(0, n, u_sample)
    else:
        ri, rj = rng.integers(0, split, u_sample), rng.integers(split, n, u_sample)
    keep = ri != rj
    systems = features.codes["system"]
    same_system_random = float(np.mean(systems[ri[keep]] == systems[rj[keep]])) if keep.any() else 0.0
    same_system_matches: list[float] = []
    random_levels = compare(features, ri[keep], rj[keep])
    u = frequencies(random_levels, np.ones(len(random_levels)), FIELDS)

    sample, sample_split = _sample(n, split, session_records, rng)
    if sample_split is None:
        sample_pairs_total = len(sample) * (len(sample) - 1) / 2
    else:
        sample_pairs_total = sample_split * (len(sample) - sample_split)
    m_estimates: list[list[list[float] | None]] = [[] for _ in FIELDS]
    found: dict[str, tuple[float, tuple[str, ...]]] = {}
    notes: dict[str, object] = {"random_pairs": int(keep.sum()), "sessions": {}}
    for session in SESSIONS:
        owners, keys = _session_keys(features, session.columns, sample)
        si, sj, _ = candidate_pairs(owners, keys, len(sample), max_block=max_block, split=sample_split)
        if len(si) < 50:
            continue
        if len(si) > session_pairs:
            chosen = rng.choice(len(si), session_pairs, replace=False)
            scale = len(si) / session_pairs
            si, sj = si[chosen], sj[chosen]
        else:
            scale = 1.0
        levels = compare(features, sample[si], sample[sj])
        blocked = [_FIELD_INDEX[name] for name in session.fields]
        levels[:, blocked] = MISSING
        fitted = run_em(levels, u, prior_start=0.2, fixed_u_fields=frozenset(f.name for f in FIELDS))
        for k in range(len(FIELDS)):
            if k not in blocked and (levels[:, k] != MISSING).any():
                m_estimates[k].append(fitted.m[k])
        found[session.name] = (fitted.prior * len(si) * scale, session.fields)
        # The session's matches (EM posteriors): how often both records come from one system.
        posterior = np.asarray(fitted.probability(fitted.totals(levels)))
        one_system = systems[sample[si]] == systems[sample[sj]]
        if posterior.sum() > 0:
            same_system_matches.append(float((posterior * one_system).sum() / posterior.sum()))
        notes["sessions"][session.name] = {"pairs": int(len(si) * scale), "prior": fitted.prior}  # type: ignore[index]

    default = MatchModel.default()
    m = []
    for k, estimates in enumerate(m_estimates):
        usable = [e for e in estimates if e is not None]
        m.append(np.mean(np.array(usable), axis=0).tolist() if usable else default.m[k])
    matches = []
    for count, fields in found.values():
        # The session saw the matches that agree exactly on all its blocked fields.
        agree = float(np.prod([m[_FIELD_INDEX[name]][0] for name in fields]))
        if agree > 0.05:
            matches.append(count / agree)
    prior = float(np.mean(matches)) / sample_pairs_total if matches and sample_pairs_total else 1e-4
    prior = float(np.clip(prior, 1e-9, 0.5))
    notes["u_random"] = u
    model = MatchModel(
        fields=FIELDS,
        m=m,
        u=u,
        prior=prior,
        pairs=int(sample_pairs_total),
        notes={"source": "em", **notes},
        given_name_sex=given_name_sexes(features),
        **term_frequencies(features),
    )
    if same_system_matches:
        model.same_system = (float(np.mean(same_system_matches)), same_system_random)
        model.notes["same_system"] = list(model.same_system)
    model.namesake_key_matches = _namesake_key_matches(features, sample, sample_split, model, max_block)
    model.notes["namesake_key_matches"] = model.namesake_key_matches
    return model


# Fields a pair sharing the identity key agrees on by construction (sex: the same first name).
_KEY_SESSION_BLOCKED = ("birth_name", "given_names", "birth_date", "sex")


def _namesake_key_matches(
    features: Features, sample: np.ndarray, split: int | None, model: MatchModel, max_block: int
) -> float | None:
    """Share of same-person pairs among the sampled pairs sharing the identity key (birth name,
    first given name, full birth date) but no second given name, judged by their other traits
    with m and u kept (model.fixed_weights_prior). None with fewer than 50 such pairs."""
    keys = namesake_keys(features)[sample]
    owners = np.flatnonzero(keys != 0)
    si, sj, _ = candidate_pairs(owners, keys[owners], len(sample), max_block=max_block, split=split)
    i, j = sample[si], sample[sj]
    second = features.codes["given_second"]
    keep = ~((second[i] == second[j]) & (second[i] != 0))
    i, j = i[keep], j[keep]
    if len(i) < 50:
        return None
    levels = compare(features, i, j)
    levels[:, [_FIELD_INDEX[name] for name in _KEY_SESSION_BLOCKED]] = MISSING
    return fixed_weights_prior(levels, model)


# Field -> the feature column whose value carries the term frequency.
TF_COLUMNS = {"birth_name": "surname", "given_names": "given_first"}
TF_TABLE_SIZE = 20_000


def term_frequencies(features: Features) -> dict[str, dict]:
    """Share of records holding each surname and first given name (the most frequent
    ``TF_TABLE_SIZE`` values seen at least twice; others get the floor of a value seen once)."""
    tables: dict[str, dict[str, float]] = {}
    floors: dict[str, float] = {}
    for field_name, column in TF_COLUMNS.items():
        codes = features.codes[column]
        present = codes[codes != 0]
        if len(present) == 0:
            continue
        counts = np.bincount(present)
        common = np.flatnonzero(counts >= 2)
        common = common[np.argsort(-counts[common], kind="stable")][:TF_TABLE_SIZE]
        first_of = {}
        for index, code in enumerate(codes.tolist()):
            first_of.setdefault(code, index)
        strings = features.strings[column]
        tables[field_name] = {strings[first_of[c]]: counts[c] / len(present) for c in common.tolist()}
        floors[field_name] = 1 / len(present)
    return {"term_frequencies": tables, "term_frequency_floor": floors}


def given_name_sexes(features: Features, minimum: int = 5, purity: float = 0.98) -> dict[str, str]:
    """First given names borne by one sex in at least ``purity`` of the ``minimum``+ records that
    state a sex ("MARIE" -> F, "JEAN" -> M; "CAMILLE", "DOMINIQUE" stay out)."""
    names = features.codes["given_first"]
    sexes = features.strings["sex"]
    male = np.bincount(names[sexes == "M"], minlength=names.max(initial=0) + 1)
    female = np.bincount(names[sexes == "F"], minlength=names.max(initial=0) + 1)
    total = male + female
    table: dict[str, str] = {}
    strings = features.strings["given_first"]
    first_of = {}
    for index, code in enumerate(names.tolist()):
        first_of.setdefault(code, index)
    for code in np.flatnonzero(total >= minimum).tolist():
        if code == 0:
            continue
        if male[code] >= purity * total[code]:
            table[strings[first_of[code]]] = "M"
        elif female[code] >= purity * total[code]:
            table[strings[first_of[code]]] = "F"
    return table
