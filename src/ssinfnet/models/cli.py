"""``ssinfnet models``: every network with its parameter count, input channels and outputs."""

from __future__ import annotations

import argparse
import json

BACKBONE_MODELS = ("infnet", "multi_infnet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list every network with parameter count and outputs")
    parser.add_argument("--width", type=int, default=None,
                        help="base width of every network (default: each model's own; 64 = standard ResNet/U-Net)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.set_defaults(func=run)


def model_rows(width: int | None = None) -> list[dict]:
    # Imported here, not at module level: every CLI start registers this verb, and torch + MONAI take seconds.
    from ssinfnet.models.backbones import BACKBONES
    from ssinfnet.models.registry import build_model, describe, list_models

    rows = []
    for name in list_models():
        variants = [{"backbone": b} for b in BACKBONES] if name in BACKBONE_MODELS else [{}]
        for config in variants:
            if width is not None:
                config = {**config, "width": width}
            model = build_model(name, **config)
            rows.append({
                "model": name,
                "backbone": config.get("backbone", "-"),
                "parameters": sum(p.numel() for p in model.parameters()),
                "in_channels": model.in_channels,
                "num_classes": getattr(model, "num_classes", "-"),
                "outputs": list(model.output_names),
                "description": describe(name),
            })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.width)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'model':<13} {'backbone':<10} {'params':>11} {'in':>3} {'cls':>3}  outputs")
    for r in rows:
        print(f"{r['model']:<13} {r['backbone']:<10} {r['parameters']:>11,} {r['in_channels']:>3} "
              f"{r['num_classes']:>3}  {', '.join(r['outputs'])}")
    return 0
