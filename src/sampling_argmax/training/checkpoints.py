"""What a run saves and when, and who may write a run folder.

Guarantees (docs/reliability.md lists the test of each):

* ``<root>/checkpoints/last.ckpt`` is the one "last" file, always the newest state: written every
  ``every_n_steps`` training steps, at every epoch end, and once more when training ends, so the final
  steps are never lost (:func:`checkpoint_callbacks`);
* a broken model (NaN/inf weights or statistics) is never written: the module refuses to save it and
  the last good file stays;
* one run at a time per folder: :class:`RunLock` holds an OS lock on ``<root>/run.lock`` for the whole
  fit/validate/test; a second run fails at once, naming the holder. The OS drops the lock when the
  holder dies, so a killed run never blocks its own ``--resume``;
* a file that is not a checkpoint (text, empty, truncated) is a clear error (:func:`read_checkpoint`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from sampling_argmax._io import load_tensors

__all__ = ["RunLock", "RunLockedError", "FinalCheckpoint", "checkpoint_callbacks", "read_checkpoint",
           "rebuild", "check_output_folder"]

LAST = "last.ckpt"


class RunLockedError(RuntimeError):
    """Another process is writing the same run folder."""


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """A folder that can be created or already is one; a clear error when it is a file."""
    path = Path(path).expanduser()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{what} {path}: {parent} is a file, not a folder; choose another folder or move the file"
                )
            break
    return path


def read_checkpoint(path: str | os.PathLike, what: str = "--ckpt_path") -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (tensors only, no code), or explain why it is not one."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the .ckpt file in it (e.g. {path}/checkpoints/{LAST})")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; give a .ckpt written by sampling-argmax fit or compare")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} {path} is empty (0 bytes): the run was killed while writing it; use an earlier "
                         "checkpoint of the same folder")
    state = load_tensors(path, what, "give a .ckpt written by sampling-argmax fit or compare")
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{what} {path} holds no model weights ('state_dict'); it is not a Lightning checkpoint")
    return state


def rebuild(build, path: str | os.PathLike, what: str) -> Any:
    """Run ``build()`` (re-creating classes a checkpoint names); a failure names the checkpoint and the fix."""
    try:
        return build()
    except (ImportError, AttributeError, TypeError, KeyError, ValueError, argparse.ArgumentError) as error:
        raise ValueError(
            f"cannot rebuild {what} recorded in {path} ({type(error).__name__}: {str(error)[:200]}); it was written "
            "by another version of sampling-argmax or names classes that cannot be imported here: pass --config "
            "with the run's YAML, or retrain"
        ) from None


class RunLock(Callback):
    """Exclusive lock on the run folder while a trainer works in it (global rank 0 takes it)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / "run.lock"
        self._handle = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero or self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise RunLockedError(
                f"{self.path.parent} is in use by another run ({holder}); wait for it to finish, or give this run "
                "another folder (--trainer.default_root_dir, or compare --out)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}))
        handle.flush()
        self._handle = handle

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning skips the callbacks' teardown when fit raises: without this, a failed fit kept its folder
        # locked for the rest of the process (a retry in the same Python session was refused, naming itself)
        self.teardown(trainer, pl_module, "")


class FinalCheckpoint(Callback):
    """Write ``last.ckpt`` when training ends normally, whatever the step and validation cadence."""

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.path = Path(dirpath) / LAST

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)


def checkpoint_callbacks(dirpath: str | os.PathLike, every_n_steps: int) -> list[Callback]:
    """``last.ckpt`` every ``every_n_steps`` steps (0 = epochs only), every epoch end and at the end of training.

    One file name, no ``last-v1.ckpt``: the version counter is off, so a resumed run overwrites the file
    it resumed from. ``epoch<N>.ckpt`` keeps the latest epoch end.
    """
    if every_n_steps < 0:
        raise ValueError(f"--checkpoint_every_n_steps={every_n_steps} must be >= 0 (0 = only at epoch ends)")
    dirpath = Path(dirpath)
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=dirpath, filename="epoch{epoch}", save_last=True, auto_insert_metric_name=False,
                        save_on_train_epoch_end=True, enable_version_counter=False),
    ]
    if every_n_steps:
        callbacks.append(ModelCheckpoint(dirpath=dirpath, filename="latest-step", every_n_train_steps=every_n_steps,
                                         save_last=True, enable_version_counter=False))
    return [*callbacks, FinalCheckpoint(dirpath)]
