"""PyTorch side of bench/parallel.ts: DeepInversion's inner loop (CE to targets + BN-statistics
loss, Adam on the pixels, teacher in eval mode) on LeNet-5-BN, batch after batch.

Prints one JSON object on stdout: images finished per second and ms per iteration. Run with
/usr/bin/python3 (Debian's python3-torch). The model and loss are those of backend.py.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from backend import bn_statistics_loss, lenet5_bn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--bn-weight", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    teacher = lenet5_bn().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    bn_layers = [m for m in teacher.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    captured = []
    for bn in bn_layers:
        bn.register_forward_hook(lambda m, inp, outp: captured.append(inp[0]))

    def invert(seed):
        g = torch.Generator().manual_seed(seed)
        images = torch.randn((args.batch, 1, 28, 28), generator=g).requires_grad_(True)
        targets = torch.arange(args.batch) % 10
        opt = torch.optim.Adam([images], lr=args.lr)
        step_ms = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            captured.clear()
            loss = F.cross_entropy(teacher(images), targets) + args.bn_weight * bn_statistics_loss(captured, bn_layers)
            loss.backward()
            opt.step()
            loss.item()
            step_ms.append((time.perf_counter() - start) * 1000)
        return images.detach(), step_ms

    invert(args.seed + 1000)  # warm-up batch, not timed
    start = time.perf_counter()
    all_ms = []
    for b in range(args.batches):
        _, ms = invert(args.seed + b)
        all_ms.extend(ms)
    wall = time.perf_counter() - start
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "batches": args.batches,
        "iterations": args.iterations,
        "wallS": wall,
        "imagesPerSecond": args.batch * args.batches / wall,
        "medianStepMs": statistics.median(all_ms),
    }))


if __name__ == "__main__":
    main()
