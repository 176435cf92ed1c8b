"""Train a small classifier on synthetic spirals with fabric-core.

A plain PyTorch loop with the five Fabric changes: ``Fabric(...)``, ``launch()``,
``setup(...)``, ``setup_dataloaders(...)`` and ``backward(loss)``. The data is made here,
so nothing is downloaded. Metrics go to ``logs/`` (CSV) and a checkpoint to
``checkpoints/``; ``--resume`` continues from it.

    python examples/train_mlp.py                      # CPU, 32-bit
    python examples/train_mlp.py --precision bf16-mixed --epochs 5
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fabric_core import Fabric
from fabric_core.loggers import CSVLogger


def make_spirals(samples: int, classes: int = 3, seed: int = 0) -> TensorDataset:
    """Interleaved noisy spirals, one per class: learnable, but not linearly separable."""
    generator = torch.Generator().manual_seed(seed)
    per_class = samples // classes
    radius = torch.linspace(0.05, 1.0, per_class).repeat(classes)
    labels = torch.arange(classes).repeat_interleave(per_class)
    angle = labels * (2 * math.pi / classes) + radius * 4 + 0.2 * torch.randn(per_class * classes, generator=generator)
    points = torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], dim=1)
    return TensorDataset(points, labels)


def build_model(classes: int = 3, width: int = 128) -> nn.Module:
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes))


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--root", default=".", help="folder for logs/ and checkpoints/")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)

    root = Path(args.root)
    fabric = Fabric(
        accelerator=args.accelerator,
        strategy=args.strategy,
        devices=args.devices,
        precision=args.precision,
        loggers=CSVLogger(root / "logs", name="spirals", flush_logs_every_n_steps=50),
    )
    fabric.launch()
    fabric.seed_everything(42)

    train_set, val_set = make_spirals(args.samples, seed=0), make_spirals(args.samples // 5, seed=1)
    train_loader, val_loader = fabric.setup_dataloaders(
        DataLoader(train_set, batch_size=args.batch_size, shuffle=True),
        DataLoader(val_set, batch_size=256),
    )
    with fabric.init_module():
        model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model, optimizer = fabric.setup(model, optimizer)

    checkpoint = root / "checkpoints" / "last.pt"
    state = {"model": model, "optimizer": optimizer, "epoch": 0, "step": 0}
    if args.resume and checkpoint.exists():
        fabric.load(checkpoint, state)
        fabric.print(f"resumed from {checkpoint} at epoch {state['epoch']}")

    accuracy = 0.0
    for epoch in range(state["epoch"], args.epochs):
        model.train()
        for inputs, labels in train_loader:
            loss = nn.functional.cross_entropy(model(inputs), labels)
            fabric.backward(loss)
            fabric.clip_gradients(model, optimizer, max_norm=5.0)
            optimizer.step()
            optimizer.zero_grad()
            state["step"] += 1
            fabric.log("train/loss", loss.detach(), step=state["step"])

        model.eval()
        correct = total = 0
        with torch.no_grad():
            for inputs, labels in val_loader:
                correct += int((model(inputs).argmax(dim=1) == labels).sum())
                total += labels.numel()
        accuracy = fabric.all_reduce(torch.tensor(correct / total)).item()
        fabric.log("val/accuracy", accuracy, step=state["step"])
        state["epoch"] = epoch + 1
        fabric.save(checkpoint, state)
        fabric.print(f"epoch {epoch + 1:3d}  loss {loss.item():.4f}  val accuracy {accuracy:.3f}")

    fabric.print(f"done: val accuracy {accuracy:.3f}; metrics in {fabric.logger.log_dir}, checkpoint {checkpoint}")
    return accuracy


if __name__ == "__main__":
    main()
