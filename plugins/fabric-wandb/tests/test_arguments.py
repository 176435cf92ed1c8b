"""Bad arguments are refused by name, when the logger is made where possible, not mid-run in W&B's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fabric_wandb import WandbLogger


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"version": "a", "id": "b"},
            ValueError,
            r"got version='a' and id='b', which mean the same thing \(version is Lightning's name for id\). Pass one",
        ),
        ({"save_dir": "x", "dir": "y"}, ValueError, r"got save_dir='x' and dir='y', which mean the same thing"),
        ({"offline": True, "mode": "online"}, ValueError, r"offline=True, mode='online'\) asks for two modes"),
        ({"mode": "dryrun"}, ValueError, r"mode='dryrun'\): W&B's modes are 'online', 'offline', 'disabled'"),
        ({"log_model": "best"}, ValueError, r"log_model='best'\): expected False .*, True .* or 'all'"),
        ({"checkpoint_name": "my model"}, ValueError, r"checkpoint_name='my model'\): W&B names an artifact with"),
        ({"id": "team/run"}, ValueError, r"id='team/run'\): W&B refuses this run id: it contains '/'"),
        ({"id": " run"}, ValueError, r"it is empty or starts or ends with whitespace"),
        ({"version": 7}, TypeError, r"id=7\): a run id is a string, got int"),
        ({"experiment": "my-run"}, TypeError, r"experiment='my-run'\): expected a W&B run .*, got a str"),
    ],
)
def test_bad_arguments_are_refused_when_the_logger_is_made(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        WandbLogger(**kwargs)


def test_a_given_run_comes_without_arguments_for_starting_one() -> None:
    class Run:  # what the logger needs of a run, to check the arguments alone
        config: dict[str, Any] = {}

        def log(self, row: dict[str, Any]) -> None:
            pass

    with pytest.raises(ValueError, match=r"logs into the run you started, so \['project', 'tags'\], which configure"):
        WandbLogger(experiment=Run(), project="p", tags=["a"], prefix="fine")  # type: ignore[arg-type]
    WandbLogger(experiment=Run(), prefix="train", log_model=True, checkpoint_name="m")  # type: ignore[arg-type]


def test_arguments_that_agree_are_accepted(tmp_path: Path) -> None:
    logger = WandbLogger(
        version="run-1", id="run-1", save_dir=tmp_path, dir=str(tmp_path), offline=True, mode="offline"
    )
    assert (logger.version, logger.save_dir) == ("run-1", str(tmp_path))


def test_an_argument_wandb_init_does_not_take_is_named(tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path, tagz=["typo"])  # W&B itself would say: unexpected keyword argument
    with pytest.raises(TypeError, match=r"passes \['tagz'\] on to wandb.init, which takes no such argument .*'tags'"):
        logger.log_metrics({"x": 1.0}, step=0)
    assert not (tmp_path / "wandb").exists()


def test_anonymous_is_passed_as_lightning_does(tmp_path: Path) -> None:
    assert WandbLogger(save_dir=tmp_path, anonymous=True)._init_args["anonymous"] == "allow"
    assert "anonymous" not in WandbLogger(save_dir=tmp_path, anonymous=False)._init_args
