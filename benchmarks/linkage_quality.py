"""Linkage quality: our resolver and Splink on the same synthetic population with known truth.

Generates `--persons` persons (simulators.population), turns every agency record into the event
subject a connector would publish (keyed hashes, normalised names), then

- runs `streams.identity.linkage.Resolver` over the records one at a time in a shuffled stream
  order,
  with m/u estimated from the records themselves (national-identifier pairs and random pairs,
  no truth), and
- runs Splink (DuckDB backend) over the same records: comparable comparisons, blocking rules
  on the same keys, u by random sampling, m by expectation maximisation, clusters by
  connected components at several match-probability thresholds;

and prints pairwise precision, recall and F1 against the truth for both, plus our records/s.
Usage: .venv/bin/python benchmarks/linkage_quality.py [--persons 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backbone.pseudonyms import Pseudonymiser  # noqa: E402
from simulators.population import PopulationSettings, generate  # noqa: E402
from streams.identity.linkage import (  # noqa: E402
    DEFAULT_MODEL,
    LinkageRecord,
    Outcome,
    Resolver,
    Thresholds,
    estimate_model,
)
from streams.identity.linkage.normalise import birth_date_key, postcode_district, sound_code  # noqa: E402

BENCHMARK_KEY = b"linkage-quality-benchmark-key"
SPLINK_THRESHOLDS = (0.9, 0.95, 0.99, 0.999)


def pairwise_quality(predicted: Mapping[str, str], truth: Mapping[str, str]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering (record -> cluster) against the truth."""
    both = Counter((predicted[r], truth[r]) for r in truth)
    true_positive = sum(_pairs(n) for n in both.values())
    predicted_pairs = sum(_pairs(n) for n in Counter(predicted[r] for r in truth).values())
    true_pairs = sum(_pairs(n) for n in Counter(truth.values()).values())
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "true_positive_pairs": true_positive,
    }


def _pairs(size: int) -> int:
    return size * (size - 1) // 2


def run_resolver(
    subjects: Sequence[Mapping[str, Any]], *, trained: bool, thresholds: Thresholds
) -> dict[str, Any]:
    """Our resolver over the subjects in the given order; clusters, outcomes and speed."""
    model = DEFAULT_MODEL
    started = time.perf_counter()
    if trained:
        model = estimate_model([LinkageRecord.from_subject(s) for s in subjects])
    trained_in = time.perf_counter() - started
    resolver = Resolver(model, thresholds)
    started = time.perf_counter()
    outcomes = Counter(resolver.resolve(subject).outcome.value for subject in subjects)
    elapsed = time.perf_counter() - started
    clusters = {s["record_id"]: resolver.person_of(s["record_id"]) for s in subjects}
    return {
        "clusters": clusters,
        "outcomes": {o.value: outcomes.get(o.value, 0) for o in Outcome},
        "seconds": round(elapsed, 2),
        "records_per_second": round(len(subjects) / elapsed, 1),
        "training_seconds": round(trained_in, 2),
        "model": model.to_dict(),
    }


def splink_rows(subjects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records as Splink's input table, with the same derived blocking columns as ours."""
    rows = []
    for subject in subjects:
        record = LinkageRecord.from_subject(subject)
        postcode = record.postcode
        rows.append(
            {
                "unique_id": record.record_id,
                "national_id": record.national_id,
                "given_name": record.given_name,
                "family_name": record.family_name,
                "birth_date": record.birth_date.isoformat() if record.birth_date else None,
                "birth_key": birth_date_key(record.birth_date) if record.birth_date else None,
                "sex": record.sex,
                # Splink's postcode comparison expects the usual written form, `LS6 2AB`
                "postcode": f"{postcode[:-3]} {postcode[-3:]}" if postcode else None,
                "district": postcode_district(postcode) if postcode else None,
                "given_sound": sound_code(record.given_name) if record.given_name else None,
                "family_sound": sound_code(record.family_name) if record.family_name else None,
            }
        )
    return rows


def run_splink(subjects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Splink on the same records: EM-trained model, clusters at several thresholds."""
    import pyarrow as pa  # type: ignore[import-untyped]  # the reference only, imported late
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.disable(logging.INFO)  # Splink's progress lines would drown the table
    rows = splink_rows(subjects)
    started = time.perf_counter()
    db_api = DuckDBAPI()
    table = db_api.register(pa.Table.from_pylist(rows), dataset_display_name="records")
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ExactMatch("national_id"),
            cl.NameComparison("given_name", jaro_winkler_thresholds=[0.92, 0.8]),
            cl.NameComparison("family_name", jaro_winkler_thresholds=[0.92, 0.8]),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.PostcodeComparison("postcode"),
            cl.ExactMatch("sex"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("national_id"),
            block_on("birth_key", "family_sound"),
            block_on("birth_key", "given_sound"),
            block_on("birth_key", "postcode"),
            block_on("given_sound", "family_sound", "substr(birth_date, 1, 4)"),
            block_on("given_sound", "family_sound", "district"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(table, settings)
    with_national_id = sum(1 for r in rows if r["national_id"]) / len(rows)
    # Pairs both holding the national id are the share of true pairs that rule can find.
    linker.training.estimate_probability_two_random_records_match(
        [block_on("national_id")], recall=max(with_national_id**2, 0.01)
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in (block_on("given_name", "family_name"), block_on("birth_date")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, record_sample_proportion=1.0
        )
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    trained_and_predicted = time.perf_counter() - started
    by_threshold = {}
    for threshold in SPLINK_THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        )
        by_threshold[threshold] = {
            str(row["unique_id"]): str(row["cluster_id"]) for row in clusters.as_record_list()
        }
    return {"clusters_by_threshold": by_threshold, "seconds": round(trained_and_predicted, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run both, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--national-id-missing", type=float, default=0.35)
    parser.add_argument("--untrained", action="store_true", help="our default m/u, no training")
    parser.add_argument("--match-threshold", type=float, default=Thresholds().match)
    parser.add_argument("--possible-threshold", type=float, default=Thresholds().possible)
    parser.add_argument("--skip-splink", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results/linkage_quality.json")
    args = parser.parse_args(argv)

    settings = PopulationSettings(
        persons=args.persons, seed=args.seed, national_id_missing=args.national_id_missing
    )
    population = generate(settings)
    pseudonymiser = Pseudonymiser(BENCHMARK_KEY)
    subjects = [record.as_subject(pseudonymiser) for record in population.records]
    truth = {
        s["record_id"]: r.person_key for s, r in zip(subjects, population.records, strict=True)
    }
    random.Random(args.seed).shuffle(subjects)

    thresholds = Thresholds(args.match_threshold, args.possible_threshold)
    ours = run_resolver(subjects, trained=not args.untrained, thresholds=thresholds)
    results: dict[str, Any] = {
        "persons": args.persons,
        "records": len(subjects),
        "seed": args.seed,
        "national_id_missing": args.national_id_missing,
        "ours": {
            **pairwise_quality(ours["clusters"], truth),
            "outcomes": ours["outcomes"],
            "records_per_second": ours["records_per_second"],
            "seconds": ours["seconds"],
            "training_seconds": ours["training_seconds"],
            "thresholds": {"match": thresholds.match, "possible": thresholds.possible},
            "model": ours["model"],
        },
    }
    if not args.skip_splink:
        splink = run_splink(subjects)
        results["splink"] = {
            "seconds": splink["seconds"],
            "by_threshold": {
                str(threshold): pairwise_quality(clusters, truth)
                for threshold, clusters in splink["clusters_by_threshold"].items()
            },
        }
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


def print_table(results: Mapping[str, Any]) -> None:
    """The side-by-side quality table."""
    print(f"{results['persons']} persons, {results['records']} records")
    print(f"{'linker':<32} {'precision':>9} {'recall':>8} {'F1':>8}")
    ours = results["ours"]
    label = f"ours (match >= {ours['thresholds']['match']})"
    print(f"{label:<32} {ours['precision']:>9.4f} {ours['recall']:>8.4f} {ours['f1']:>8.4f}")
    for threshold, quality in results.get("splink", {}).get("by_threshold", {}).items():
        label = f"splink (p >= {threshold})"
        print(
            f"{label:<32} {quality['precision']:>9.4f} "
            f"{quality['recall']:>8.4f} {quality['f1']:>8.4f}"
        )
    print(f"ours: {ours['records_per_second']} records/s, outcomes {ours['outcomes']}")


if __name__ == "__main__":
    raise SystemExit(main())
