#!/usr/bin/env bash
set -e
ssinfnet pretrain --network single --data ../shared/data/unlabeled-ct ../shared/data/covid-semiseg --out /root/ssinfnet-work/2026-11-26-cpu/pretrain-single --preset cpu --no-progress
ssinfnet train single --data ../shared/data/covid-semiseg --out /root/ssinfnet-work/2026-11-26-cpu/u-net --preset cpu --no-progress --set single.focal=null --set single.lookahead=null --set 'model={name: unet, width: 16}'
ssinfnet train single --data ../shared/data/covid-semiseg --out /root/ssinfnet-work/2026-11-26-cpu/sinfnet --preset cpu --no-progress --set single.focal=null --set single.lookahead=null
ssinfnet train single --data ../shared/data/covid-semiseg --out /root/ssinfnet-work/2026-11-26-cpu/ssinfnet --preset cpu --no-progress --init /root/ssinfnet-work/2026-11-26-cpu/pretrain-single --set single.focal=null --set single.lookahead=null
ssinfnet train single --data ../shared/data/covid-semiseg --out /root/ssinfnet-work/2026-11-26-cpu/ssinfnet-fl-la --preset cpu --no-progress --init /root/ssinfnet-work/2026-11-26-cpu/pretrain-single --set 'single.focal={alpha: 0.25, gamma: 2.0}' --set 'single.lookahead={k: 5, alpha: 0.5}'
ssinfnet evaluate --data ../shared/data/covid-semiseg --split test --single /root/ssinfnet-work/2026-11-26-cpu/ssinfnet --out /root/ssinfnet-work/2026-11-26-cpu/eval/ssinfnet --overwrite
ssinfnet evaluate --data ../shared/data/covid-semiseg --split test --single /root/ssinfnet-work/2026-11-26-cpu/u-net --out /root/ssinfnet-work/2026-11-26-cpu/eval/u-net --overwrite
ssinfnet evaluate --data ../shared/data/covid-semiseg --split test --single /root/ssinfnet-work/2026-11-26-cpu/sinfnet --out /root/ssinfnet-work/2026-11-26-cpu/eval/sinfnet --overwrite
ssinfnet evaluate --data ../shared/data/covid-semiseg --split test --single /root/ssinfnet-work/2026-11-26-cpu/ssinfnet-fl-la --out /root/ssinfnet-work/2026-11-26-cpu/eval/ssinfnet-fl-la --overwrite
ssinfnet compare /root/ssinfnet-work/2026-11-26-cpu/eval/ssinfnet /root/ssinfnet-work/2026-11-26-cpu/eval/u-net /root/ssinfnet-work/2026-11-26-cpu/eval/sinfnet /root/ssinfnet-work/2026-11-26-cpu/eval/ssinfnet-fl-la --out /root/ssinfnet-work/2026-11-26-cpu/compare-single --overwrite
