"""``fabric.save`` and ``fabric.load`` through DeepSpeed's engines.

A checkpoint of a state that holds DeepSpeed models is a **directory** written by
``engine.save_checkpoint`` on every rank (each rank writes its ZeRO shards; rank 0 the model
states). The rest of the user's state (plain values, schedulers, other stateful objects)
travels as DeepSpeed's *client state* inside the model-states file. Layout::

    path/
      fabric_deepspeed.json      which tag holds which model, and the client state
      latest                     DeepSpeed's pointer to the last tag written
      checkpoint/                one tag per model: "checkpoint" when the state holds one
        mp_rank_00_model_states.pt
        zero_pp_rank_0_mp_rank_00_optim_states.pt ...
      zero_to_fp32.py            DeepSpeed's own consolidation script

With several models (a GAN), each gets the tag ``checkpoint-<key>``, after its key in the
state. Saving and loading are made of fabric-core's checkpoint toolkit
(:mod:`fabric_core.strategies.checkpoint_state`): the ranks write a hidden staging folder
beside ``path``; once all of them are done, rank 0 writes ``fabric_manifest.json`` (sizes and
checksums of every file) and swaps the folder into place (``save_directory``); a load recovers
a path left missing by a crash mid-swap, checks the manifest before it restores anything
(``verify_directory``) and restores the client state with ``check_missing``/``restore_into``.
A state without any DeepSpeed model is saved as one file (``save_file``), as the DDP strategy
does.

A user key that DeepSpeed uses itself (``module``, ``optimizer``, ``global_steps``, ...) is
refused: DeepSpeed would overwrite it, or drop it on load. Loading reads with DeepSpeed's
loader, so with ``weights_only=True`` (the default) the files are first scanned for pickled
objects that ``torch.load(weights_only=True)`` would refuse.

The steps live in three modules, re-exported here: :mod:`fabric_deepspeed.checkpoint_files`
(the folder's files, read safely), :mod:`fabric_deepspeed.checkpoint_save` and
:mod:`fabric_deepspeed.checkpoint_load`.
"""

from __future__ import annotations

from fabric_deepspeed.checkpoint_files import (
    DEEPSPEED_CHECKPOINT_GLOBALS,
    METADATA_FILE,
    RESERVED_KEYS,
    SINGLE_TAG,
    check_safe,
    load_model_states,
    model_states_file,
    read_metadata,
)
from fabric_deepspeed.checkpoint_load import load, load_full_weights
from fabric_deepspeed.checkpoint_save import CheckpointKeyError, save

__all__ = [
    "DEEPSPEED_CHECKPOINT_GLOBALS",
    "METADATA_FILE",
    "RESERVED_KEYS",
    "SINGLE_TAG",
    "CheckpointKeyError",
    "check_safe",
    "load",
    "load_full_weights",
    "load_model_states",
    "model_states_file",
    "read_metadata",
    "save",
]
