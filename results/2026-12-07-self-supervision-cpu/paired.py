"""The paired out-of-fold difference between two candidates of a study, computed as the study computes each
candidate's difference to random init (by seed and slice, 95% CI clustered by source group), from the
crossval files copied here. Usage: python paired.py PROTOCOL A B  (A minus B)."""

import sys
from pathlib import Path

from ssinfnet.core.folders import read_json
from ssinfnet.core.metrics import mean_ci
from ssinfnet.workflows.protocol import endpoint_scores, load_protocol

HERE = Path(__file__).resolve().parent


def per_slice(cv_dir: Path, name: str, seeds: tuple[int, ...], metric: str) -> dict:
    slices = {}
    for seed in seeds:
        cv = read_json(cv_dir / f"{name}-s{seed}.json")
        for image, value in zip(cv["images"], endpoint_scores(cv, metric)[1]):
            slices[(seed, image["id"])] = (value, str(image["group"]))
    return slices


def main(protocol_name: str, a: str, b: str) -> None:
    protocol = load_protocol(HERE.parents[1] / "studies" / f"{protocol_name}.yaml", data_root=".")
    cv_dir = HERE / protocol_name.removeprefix("self-supervision-cpu").lstrip("-") / "cv"
    first, second = (per_slice(cv_dir, name, protocol.seeds, protocol.endpoint) for name in (a, b))
    paired = [(value - second[key][0], group) for key, (value, group) in first.items()]
    difference = mean_ci([d for d, _ in paired], [g for _, g in paired])
    print(f"{a} - {b}: {difference.mean:+.3f} [{difference.ci_low:+.3f}, {difference.ci_high:+.3f}] "
          f"({len(paired)} slice scores, seeds {', '.join(map(str, protocol.seeds))})")


if __name__ == "__main__":
    main(*sys.argv[1:])
