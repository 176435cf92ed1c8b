"""A trainer you can copy: a complete training loop on fabric-core's public API.

:class:`Trainer` trains a model that brings its own steps, as a LightningModule does::

    class MyModel(nn.Module):
        def training_step(self, batch, batch_idx): ...    # the loss (or {"loss": loss, ...})
        def validation_step(self, batch, batch_idx): ...  # a tensor (-> "val_loss") or a dict of metrics
        def configure_optimizers(self): ...                # see Trainer._configure_optimizers

    trainer = Trainer(strategy="ddp", devices=2, max_steps=1000, checkpoint_every_n_steps=100)
    trainer.fit(model, train_loader, val_loader, ckpt_path="latest")

What it does, in order (docs/guide/trainer.md walks through it):

1. ``Trainer()`` creates the :class:`~fabric_core.Fabric` (any accelerator, strategy, precision,
   devices; callbacks and loggers) and launches the processes.
2. ``fit`` sets up the dataloaders, the optimizer and scheduler from ``configure_optimizers``,
   the model, and restores the latest checkpoint when asked.
3. Each epoch runs batches until ``max_epochs`` or ``max_steps``. Batches are accumulated
   ``grad_accum_steps`` at a time under ``fabric.no_backward_sync`` (no gradient sync until
   the last one), then the optimizer and a per-step scheduler step.
4. Every ``val_every_n_steps`` steps (or at the end of every ``val_every_n_epochs`` epoch) it
   validates, logs the means, and steps a ``ReduceLROnPlateau`` on its monitored metric.
5. Every ``checkpoint_every_n_steps`` steps, and at the end, it saves model, optimizer,
   scheduler, step, epoch and the position in the epoch. A resumed run continues from the
   batch after the checkpoint, with the same data order when the training DataLoader
   shuffles with :class:`EpochShuffleSampler`.

Callbacks are reached by ``fabric.call`` with keyword arguments (each callback method takes
the ones it names): ``on_train_start(fabric, trainer, total, start_step)``,
``on_train_epoch_start(fabric, trainer, epoch)``, ``on_train_batch_start(fabric, trainer,
batch, batch_idx, step)``, ``on_train_batch_end(fabric, trainer, step, total, loss, metrics,
batch_idx)``, ``on_validation_start(fabric, trainer, step)``, ``on_validation_end(fabric,
trainer, step, metrics)``, ``on_train_epoch_end(fabric, trainer, epoch)``,
``on_train_end(fabric, trainer, step)``. ``step`` counts optimizer steps (1 after the first).
The same callback objects may implement Fabric's event hooks (``fabric_on_save_checkpoint``, ...).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, Sampler, SequentialSampler

from fabric_core import Fabric

CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.ckpt$")


class EpochShuffleSampler(Sampler[int]):
    """Shuffles ``range(len(data_source))`` anew each epoch; the order depends only on ``seed`` and ``epoch``.

    The trainer sets :attr:`epoch` before each epoch, so a run resumed in the middle of epoch
    ``e`` sees the same order as the run that saved the checkpoint. (It has no ``set_epoch``
    on purpose: Fabric would set it from the number of passes over the loader, which starts
    again at 0 in a resumed run.) Under several processes, Fabric splits the order between them.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        self.num_samples = len(data_source)
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


class Trainer:
    """Trains a model that defines ``training_step``, ``validation_step`` and ``configure_optimizers``.

    :param accelerator, strategy, devices, num_nodes, precision, callbacks, loggers: passed to ``Fabric``.
    :param max_epochs: stop after this many epochs (``None``: no limit; then ``max_steps`` is needed).
    :param max_steps: stop after this many optimizer steps (``None``: no limit).
    :param grad_accum_steps: batches per optimizer step (the last batches of an epoch may be fewer).
    :param val_every_n_steps: validate every this many steps (``None``: by epochs).
    :param val_every_n_epochs: validate at the end of every this many epochs (``None``: never).
    :param limit_val_batches: validate on at most this many batches per process.
    :param log_every_n_steps: log the training loss and learning rate every this many steps.
    :param gradient_clip_val: clip the gradient norm to this value (``None``: no clipping).
    :param checkpoint_dir: where ``step-NNNNNN.ckpt`` checkpoints go.
    :param checkpoint_every_n_steps: save every this many steps and at the end (``None``: never).
    :param seed: passed to ``fabric.seed_everything`` before anything random happens.
    """

    def __init__(
        self,
        *,
        accelerator: str = "auto",
        strategy: Any = "auto",
        devices: int | str = "auto",
        num_nodes: int = 1,
        precision: str = "32-true",
        callbacks: list[Any] | None = None,
        loggers: Any = None,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        grad_accum_steps: int = 1,
        val_every_n_steps: int | None = None,
        val_every_n_epochs: int | None = 1,
        limit_val_batches: int | None = None,
        log_every_n_steps: int = 1,
        gradient_clip_val: float | None = None,
        checkpoint_dir: str | Path = "checkpoints",
        checkpoint_every_n_steps: int | None = None,
        seed: int | None = 42,
    ) -> None:
        if max_epochs is None and max_steps is None:
            raise ValueError("Trainer(max_epochs=None, max_steps=None) would never stop: give one of them.")
        if grad_accum_steps < 1:
            raise ValueError(f"Trainer(grad_accum_steps={grad_accum_steps}): use 1 (no accumulation) or more.")
        self.fabric = Fabric(
            accelerator=accelerator,
            strategy=strategy,
            devices=devices,
            num_nodes=num_nodes,
            precision=precision,
            callbacks=callbacks,
            loggers=loggers,
        )
        self.fabric.launch()
        if seed is not None:
            self.fabric.seed_everything(seed)
        self.max_epochs = max_epochs
        self.max_steps = max_steps
        self.grad_accum_steps = grad_accum_steps
        self.val_every_n_steps = val_every_n_steps
        self.val_every_n_epochs = val_every_n_epochs
        self.limit_val_batches = limit_val_batches
        self.log_every_n_steps = log_every_n_steps
        self.gradient_clip_val = gradient_clip_val
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        #: optimizer steps done, epochs done, and batches done in the current epoch
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        #: a callback may set this to stop after the current step
        self.should_stop = False
        self.last_validation: dict[str, float] = {}
        self._saved_at: int | None = None

    # -- fit -----------------------------------------------------------------------------------

    def fit(
        self,
        model: torch.nn.Module,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        ckpt_path: str | Path | None = None,
    ) -> None:
        """Train ``model``; ``ckpt_path`` is a checkpoint to resume from, or ``"latest"`` in ``checkpoint_dir``."""
        fabric = self.fabric
        sampler = train_loader.sampler
        train_loader = fabric.setup_dataloaders(train_loader)
        if val_loader is not None:
            val_loader = fabric.setup_dataloaders(val_loader)
        optimizer, scheduler = self._configure_optimizers(model)
        model, optimizer = fabric.setup(model, optimizer)
        state: dict[str, Any] = {"model": model, "optimizer": optimizer}
        if scheduler is not None:
            state["scheduler"] = scheduler["scheduler"]
        if ckpt_path is not None:
            self._resume(state, ckpt_path, sampler)

        fabric.call("on_train_start", fabric=fabric, trainer=self, total=self.max_steps, start_step=self.step)
        while not self._finished():
            if isinstance(sampler, EpochShuffleSampler):
                sampler.epoch = self.epoch
            self._train_epoch(model, optimizer, scheduler, train_loader, val_loader, state)
        if self.checkpoint_every_n_steps and self._saved_at != self.step:
            self.save(state)
        fabric.call("on_train_end", fabric=fabric, trainer=self, step=self.step)

    def _finished(self) -> bool:
        if self.should_stop:
            return True
        if self.max_steps is not None and self.step >= self.max_steps:
            return True
        return self.max_epochs is not None and self.epoch >= self.max_epochs

    def _train_epoch(
        self,
        model: Any,
        optimizer: Any,
        scheduler: dict[str, Any] | None,
        train_loader: Any,
        val_loader: Any,
        state: dict[str, Any],
    ) -> None:
        fabric = self.fabric
        fabric.call("on_train_epoch_start", fabric=fabric, trainer=self, epoch=self.epoch)
        num_batches = len(train_loader)
        skip = self.batch_in_epoch  # > 0 only in a run resumed in the middle of an epoch
        losses: list[torch.Tensor] = []
        model.train()
        for batch_idx, batch in enumerate(train_loader):
            if batch_idx < skip:
                continue  # the order is the same as before the checkpoint; these batches were trained on
            if self._finished():
                break
            fabric.call(
                "on_train_batch_start", fabric=fabric, trainer=self, batch=batch, batch_idx=batch_idx, step=self.step
            )
            steps_now = (batch_idx + 1) % self.grad_accum_steps == 0 or batch_idx + 1 == num_batches
            # Gradients are synchronized only on the last batch before an optimizer step.
            with fabric.no_backward_sync(model, enabled=not steps_now):
                output = model.training_step(batch, batch_idx)
                loss = output["loss"] if isinstance(output, Mapping) else output
                fabric.backward(loss / self.grad_accum_steps)
            losses.append(loss.detach())
            self.batch_in_epoch = batch_idx + 1
            if not steps_now:
                continue

            if self.gradient_clip_val is not None:
                fabric.clip_gradients(model, optimizer, max_norm=self.gradient_clip_val)
            optimizer.step()
            optimizer.zero_grad()
            self.step += 1
            if self._scheduler_due(scheduler, "step", self.step):
                scheduler["scheduler"].step()  # type: ignore[index]

            train_loss = torch.stack(losses).mean()
            losses.clear()
            metrics = {"train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"]}
            if self.step % self.log_every_n_steps == 0:
                fabric.log_dict(metrics, step=self.step)
            fabric.call(
                "on_train_batch_end",
                fabric=fabric,
                trainer=self,
                step=self.step,
                total=self.max_steps,
                loss=train_loss,
                metrics=metrics,
                batch_idx=batch_idx,
            )
            if self.val_every_n_steps and self.step % self.val_every_n_steps == 0:
                self.validate(model, val_loader, scheduler)
            if self.checkpoint_every_n_steps and self.step % self.checkpoint_every_n_steps == 0:
                self.save(state)

        if self.batch_in_epoch < num_batches:
            return  # stopped inside the epoch
        if self._scheduler_due(scheduler, "epoch", self.epoch + 1):
            scheduler["scheduler"].step()  # type: ignore[index]
        if (
            self.val_every_n_steps is None
            and self.val_every_n_epochs
            and (self.epoch + 1) % self.val_every_n_epochs == 0
        ):
            self.validate(model, val_loader, scheduler)
        fabric.call("on_train_epoch_end", fabric=fabric, trainer=self, epoch=self.epoch)
        self.epoch += 1
        self.batch_in_epoch = 0

    @staticmethod
    def _scheduler_due(scheduler: dict[str, Any] | None, interval: str, count: int) -> bool:
        """Whether a scheduler stepped by ``interval`` is due after ``count`` steps or epochs (never for plateau)."""
        if scheduler is None or scheduler["interval"] != interval or _on_plateau(scheduler):
            return False
        return bool(count % scheduler["frequency"] == 0)

    # -- validation ------------------------------------------------------------------------------

    def validate(self, model: Any, val_loader: Any, scheduler: dict[str, Any] | None = None) -> dict[str, float]:
        """Mean of ``validation_step`` over the batches, averaged over processes, logged and sent to callbacks."""
        if val_loader is None or not hasattr(model, "validation_step"):
            return {}
        fabric = self.fabric
        fabric.call("on_validation_start", fabric=fabric, trainer=self, step=self.step)
        model.eval()
        totals: dict[str, torch.Tensor] = {}
        batches = 0
        with torch.no_grad():
            for batch_idx, batch in enumerate(val_loader):
                if self.limit_val_batches is not None and batch_idx >= self.limit_val_batches:
                    break
                output = model.validation_step(batch, batch_idx)
                values = output if isinstance(output, Mapping) else {"val_loss": output}
                for name, value in values.items():
                    totals[name] = totals.get(name, 0) + torch.as_tensor(value, dtype=torch.float32).detach()
                batches += 1
        model.train()
        means = fabric.all_reduce({name: total / max(batches, 1) for name, total in totals.items()}, reduce_op="mean")
        metrics = {name: float(value) for name, value in means.items()}
        fabric.log_dict(metrics, step=self.step)
        self.last_validation = metrics
        fabric.call("on_validation_end", fabric=fabric, trainer=self, step=self.step, metrics=metrics)
        if scheduler is not None and _on_plateau(scheduler):
            monitor = scheduler["monitor"]
            if monitor not in metrics:
                raise KeyError(
                    f"ReduceLROnPlateau monitors {monitor!r}, but validation returned only {sorted(metrics)}. Return "
                    f"{monitor!r} from validation_step, or set 'monitor' in configure_optimizers to one of these."
                )
            scheduler["scheduler"].step(metrics[monitor])
        return metrics

    # -- optimizers and schedulers -----------------------------------------------------------------

    def _configure_optimizers(self, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, dict[str, Any] | None]:
        """``model.configure_optimizers()`` returns an optimizer, or Lightning's dict::

        {"optimizer": opt, "lr_scheduler": scheduler}  # stepped every epoch
        {"optimizer": opt, "lr_scheduler": {"scheduler": s, "interval": "step", "frequency": 1}}
        {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}  # after each validation
        """
        configured = model.configure_optimizers()  # type: ignore[operator]
        if isinstance(configured, torch.optim.Optimizer):
            return configured, None
        if not isinstance(configured, Mapping) or "optimizer" not in configured:
            raise TypeError(
                f"configure_optimizers() returned {type(configured).__name__}; return an optimizer or a dict "
                "{'optimizer': ..., 'lr_scheduler': ...}."
            )
        scheduler = configured.get("lr_scheduler")
        if scheduler is None:
            return configured["optimizer"], None
        if not isinstance(scheduler, Mapping):
            scheduler = {"scheduler": scheduler}
        config = {"interval": "epoch", "frequency": 1, "monitor": "val_loss", **scheduler}
        if config["interval"] not in ("step", "epoch"):
            raise ValueError(f"lr_scheduler interval {config['interval']!r}: use 'step' or 'epoch'.")
        return configured["optimizer"], config

    # -- checkpoints --------------------------------------------------------------------------------

    def save(self, state: dict[str, Any]) -> Path:
        """Save ``state`` with the position in training as ``checkpoint_dir/step-NNNNNN.ckpt``."""
        path = self.checkpoint_dir / f"step-{self.step:06d}.ckpt"
        position = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}
        self.fabric.save(path, {**state, **position})
        self._saved_at = self.step
        return path

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint with the highest step in ``checkpoint_dir`` (a file or, when sharded, a folder)."""
        if not self.checkpoint_dir.is_dir():
            return None
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
        return max(found)[1] if found else None

    def _resume(self, state: dict[str, Any], ckpt_path: str | Path, sampler: Any) -> None:
        path = self.latest_checkpoint() if ckpt_path == "latest" else Path(ckpt_path)
        if path is None:
            self.fabric.print(f"no checkpoint in {self.checkpoint_dir}: starting from scratch")
            return
        position = {"step": 0, "epoch": 0, "batch_in_epoch": 0}
        full = {**state, **position}
        self.fabric.load(path, full)
        self.step, self.epoch, self.batch_in_epoch = full["step"], full["epoch"], full["batch_in_epoch"]
        self._saved_at = self.step
        if self.batch_in_epoch and not isinstance(sampler, (EpochShuffleSampler, SequentialSampler)):
            warnings.warn(
                f"Resuming in the middle of epoch {self.epoch} with a {type(sampler).__name__}: the batches "
                "skipped now may not be those trained on before the checkpoint. Shuffle with EpochShuffleSampler "
                "(or not at all) for an exact resume.",
                stacklevel=3,
            )
        self.fabric.print(f"resumed from {path} at step {self.step} (epoch {self.epoch}, batch {self.batch_in_epoch})")


def _on_plateau(scheduler: dict[str, Any]) -> bool:
    return isinstance(scheduler["scheduler"], ReduceLROnPlateau)
