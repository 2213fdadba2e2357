"""PyTorch side of bench/backend.ts: the same models and steps, timed on the CPU (or, with
--device cuda, on the GPU).

Prints one JSON object on stdout. Run with /usr/bin/python3 (Debian's python3-torch).
Models mirror src/core/models/zoo.ts: LeNet-5-BN (first conv 'same' on 28x28), the CIFAR
ResNet (resnet-cifar) and ResNet-18 (resnet-basic, kuangliu/pytorch-cifar's), both with 1x1-conv
projection shortcuts; convs before BatchNorm have no bias.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet5_bn(in_ch=1, classes=10):
    return nn.Sequential(
        nn.Conv2d(in_ch, 6, 5, padding=2, bias=False), nn.BatchNorm2d(6, momentum=0.1, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, bias=False), nn.BatchNorm1d(120), nn.ReLU(),
        nn.Linear(120, 84, bias=False), nn.BatchNorm1d(84), nn.ReLU(),
        nn.Linear(84, classes),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class BasicBlockResNet(nn.Module):
    """Stem conv3x3-BN-ReLU, stages of basic blocks given as (channels, blocks, first stride), global average pool, linear."""

    def __init__(self, stem_channels, stages, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_channels), nn.ReLU())
        blocks, cin = [], stem_channels
        for cout, n, stride in stages:
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class ResNetCifar(BasicBlockResNet):
    """zoo 'resnet-cifar': depth 6n+2, three stages of n blocks at 16/32/64 channels."""

    def __init__(self, depth=20, classes=10):
        n = (depth - 2) // 6
        super().__init__(16, [(16, n, 1), (32, n, 2), (64, n, 2)], classes)


class ResNetBasic(BasicBlockResNet):
    """zoo 'resnet-basic': kuangliu/pytorch-cifar's ResNet-18 ([2,2,2,2]) / ResNet-34 ([3,4,6,3]), 64/128/256/512 channels."""

    def __init__(self, blocks=(2, 2, 2, 2), classes=10):
        super().__init__(64, [(64 * 2**i, n, 1 if i == 0 else 2) for i, n in enumerate(blocks)], classes)


def bn_statistics_loss(inputs, bn_layers):
    total = 0.0
    for x, bn in zip(inputs, bn_layers):
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        total = total + torch.norm(mean - bn.running_mean, 2) + torch.norm(var - bn.running_var, 2)
    return total


def time_steps(step, steps, warmup, sync):
    """Times `step`; `sync` waits for the device's queued work, so each time covers the step's kernels."""
    for _ in range(warmup):
        step()
        sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return {"medianMs": statistics.median(times), "minMs": min(times), "steps": steps, "warmup": warmup, "allMs": times}


def bench_model(name, model, shape, steps, warmup, seed, device):
    # The batch is drawn on the CPU so every device gets the same numbers.
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(device)
    labels = torch.randint(0, 10, (shape[0],), generator=g).to(device)
    model.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = {}

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        loss.item()

    out["train"] = time_steps(train_step, steps, warmup, sync)

    # Input-gradient step (DeepInversion): teacher in eval mode, gradient w.r.t. the images only.
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bn_layers = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    captured = []
    hooks = [bn.register_forward_hook(lambda m, inp, outp: captured.append(inp[0])) for bn in bn_layers]
    images = x.clone().requires_grad_(True)

    def inversion_step():
        captured.clear()
        logits = model(images)
        loss = F.cross_entropy(logits, labels) + bn_statistics_loss(captured, bn_layers)
        (grad,) = torch.autograd.grad(loss, images)
        with torch.no_grad():
            images.sub_(0.01 * grad)
        loss.item()

    out["inversion"] = time_steps(inversion_step, steps, warmup, sync)
    for h in hooks:
        h.remove()
    return out


# Model id (bench/support/steps.ts BENCH_MODELS) -> (constructor, batch shape NCHW).
MODELS = {
    "lenet5-bn": (lenet5_bn, (256, 1, 28, 28)),
    "resnet20": (lambda: ResNetCifar(20), (128, 3, 32, 32)),
    "resnet18": (lambda: ResNetBasic(blocks=[2, 2, 2, 2]), (128, 3, 32, 32)),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="lenet5-bn,resnet20", help=f"comma-separated, of {','.join(MODELS)}")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-tf32", action="store_true", help="CUDA: plain fp32 convs and matmuls (PyTorch's default lets cuDNN use TF32)")
    args = parser.parse_args()
    if args.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    results = {}
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"unknown model {name}; use {', '.join(MODELS)}")
        make, shape = MODELS[name]
        results[name] = bench_model(name, make(), shape, args.steps, args.warmup, args.seed, device)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
        "results": results,
    }))


if __name__ == "__main__":
    main()
