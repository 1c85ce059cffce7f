"""The paired out-of-fold difference between two candidates of a study, computed by the study's own code
(by seed and slice, 95% CI clustered by source group), from the crossval files copied here.
Usage: python paired.py PROTOCOL A B  (A minus B)."""

import sys
from pathlib import Path

from ssinfnet.core.folders import read_json
from ssinfnet.workflows.protocol import load_protocol, paired_difference, slice_scores

HERE = Path(__file__).resolve().parent


def main(protocol_name: str, a: str, b: str) -> None:
    protocol = load_protocol(HERE.parents[1] / "studies" / f"{protocol_name}.yaml", data_root=".")
    cv_dir = HERE / protocol_name.removeprefix("self-supervision-cpu").lstrip("-") / "cv"
    first, second = (slice_scores({seed: read_json(cv_dir / f"{name}-s{seed}.json") for seed in protocol.seeds},
                                  protocol.endpoint) for name in (a, b))
    difference = paired_difference(first, second)
    print(f"{a} - {b}: {difference.mean:+.3f} [{difference.ci_low:+.3f}, {difference.ci_high:+.3f}] "
          f"({difference.n} slice scores, seeds {', '.join(map(str, protocol.seeds))})")


if __name__ == "__main__":
    main(*sys.argv[1:])
