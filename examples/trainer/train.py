"""Train a spirals classifier with the example Trainer (trainer.py next to this file).

The data is made here, so nothing is downloaded. Metrics go to ``<root>/logs`` (CSV),
checkpoints to ``<root>/checkpoints``; ``--resume`` continues from the latest one.

    python examples/trainer/train.py --max-steps 200
    python examples/trainer/train.py --devices 2 --strategy ddp --grad-accum 2 --scheduler plateau
    python examples/trainer/train.py --devices 2 --strategy fsdp --max-steps 50 --checkpoint-every 10
    python examples/trainer/train.py --max-steps 400 --resume          # continue the run above
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trainer import EpochShuffleSampler, Trainer

from fabric_core import Fabric
from fabric_core.callbacks import LossSpikeDetector
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


class SpiralClassifier(nn.Module):
    """An MLP that brings its own training and validation steps and optimizer, as a LightningModule does."""

    def __init__(self, lr: float, scheduler: str, lr_period: int, classes: int = 3, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, classes)
        )
        self.lr = lr
        self.scheduler = scheduler
        self.lr_period = lr_period

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.net(points)  # type: ignore[no-any-return]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        points, labels = batch
        return nn.functional.cross_entropy(self(points), labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        points, labels = batch
        logits = self(points)
        return {
            "val_loss": nn.functional.cross_entropy(logits, labels),
            "val_accuracy": (logits.argmax(dim=1) == labels).float().mean(),
        }

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        if self.scheduler == "cosine":  # stepped after every optimizer step
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.lr_period)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        if self.scheduler == "step":  # stepped after every epoch
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.7)}
        if self.scheduler == "plateau":  # stepped after every validation, with val_loss
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}
        return optimizer


class AnnounceCheckpoints:
    """A callback on Fabric's event hooks (not ``fabric.call``): says where each checkpoint went."""

    def fabric_on_save_checkpoint(self, fabric: Fabric, path: Path, state: dict[str, Any]) -> None:
        fabric.print(f"saving checkpoint {path.name} at step {state['step']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--grad-accum", type=int, default=1, help="batches per optimizer step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--scheduler", choices=["cosine", "step", "plateau", "none"], default="cosine")
    parser.add_argument("--lr-period", type=int, default=1000, help="steps of the cosine schedule's half period")
    parser.add_argument("--val-every", type=int, default=None, help="validate every N steps (default: each epoch)")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N steps and at the end")
    parser.add_argument("--clip", type=float, default=None, help="clip the gradient norm to this value")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--root", default=".", help="folder for logs/ and checkpoints/")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("--loss-spike", choices=["warn", "raise"], default="warn")
    parser.add_argument("--no-progress-bar", action="store_true")
    args = parser.parse_args(argv)
    if args.max_epochs is None and args.max_steps is None:
        args.max_epochs = 10
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    root = Path(args.root)
    callbacks: list[Any] = [LossSpikeDetector(mode=args.loss_spike), AnnounceCheckpoints()]
    if not args.no_progress_bar:
        callbacks.append("progress_bar")
    trainer = Trainer(
        accelerator=args.accelerator,
        strategy=args.strategy,
        devices=int(args.devices) if args.devices.isdigit() else args.devices,
        num_nodes=args.num_nodes,
        precision=args.precision,
        callbacks=callbacks,
        loggers=CSVLogger(root / "logs", name="spirals"),
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        grad_accum_steps=args.grad_accum,
        val_every_n_steps=args.val_every,
        gradient_clip_val=args.clip,
        checkpoint_dir=root / "checkpoints",
        checkpoint_every_n_steps=args.checkpoint_every,
    )

    train_set, val_set = make_spirals(args.samples, seed=0), make_spirals(max(args.samples // 5, 30), seed=1)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=EpochShuffleSampler(train_set, seed=42))
    val_loader = DataLoader(val_set, batch_size=256)
    with trainer.fabric.init_module():
        model = SpiralClassifier(args.lr, args.scheduler, args.lr_period)

    trainer.fit(model, train_loader, val_loader, ckpt_path="latest" if args.resume else None)
    shown = "  ".join(f"{name}={value:.4f}" for name, value in trainer.last_validation.items())
    trainer.fabric.print(f"done at step {trainer.step} (epoch {trainer.epoch}); last validation: {shown or 'none'}")
    return trainer.last_validation


if __name__ == "__main__":
    main()
