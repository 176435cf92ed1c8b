"""Lightning's import paths for DeepSpeed's classes resolve to this add-on's classes."""

from __future__ import annotations


def test_deepspeed_names_are_fabric_deepspeeds_classes() -> None:
    from fabric_core.plugins import DeepSpeedPrecision
    from fabric_core.plugins.precision import DeepSpeedPrecision as PrecisionFromSubpackage
    from fabric_core.strategies import DeepSpeedStrategy, ParallelStrategy

    from fabric_deepspeed.precision import DeepSpeedPrecision as AddonPrecision
    from fabric_deepspeed.strategy import DeepSpeedStrategy as AddonStrategy

    assert DeepSpeedStrategy is AddonStrategy
    assert DeepSpeedPrecision is PrecisionFromSubpackage is AddonPrecision
    assert issubclass(DeepSpeedStrategy, ParallelStrategy)
