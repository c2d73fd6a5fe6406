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
* a file that is not a checkpoint (text, empty, truncated, a device or /proc file, tensors without data on
  the meta device) is a clear error (:func:`read_checkpoint`);
* finished work is never replaced: ``fit`` into a checkpoint folder that already holds checkpoints must say
  ``--resume`` (continue that run) or ``--overwrite`` (delete them and start again)
  (:func:`check_checkpoint_folder`), and a resumed run must be the same run: method, model and data arguments
  that contradict the checkpoint are refused, naming both values (:func:`contradictions`);
* output folders and files are checked before any work: a file where a folder is expected, a folder that
  cannot be created or written (e.g. under /proc) is a clear error naming the argument
  (:func:`check_output_folder`, :func:`check_output_file`).
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
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from sampling_argmax._io import load_tensors

__all__ = [
    "FinalCheckpoint",
    "FinishedRunError",
    "RunLock",
    "RunLockedError",
    "check_checkpoint_folder",
    "check_output_file",
    "check_output_folder",
    "checkpoint_callbacks",
    "contradictions",
    "plain_config",
    "read_checkpoint",
    "rebuild",
]

LAST = "last.ckpt"


class RunLockedError(RuntimeError):
    """Another process is writing the same run folder."""


class FinishedRunError(FileExistsError):
    """The output folder holds the checkpoints of an earlier run; neither --resume nor --overwrite was given."""


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """A folder that exists or can be created, and can be written; a clear error naming ``what`` otherwise.

    Creates the folder (and its parents) when it is missing: it is about to be written.
    """
    path = Path(path).expanduser()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{what} {path}: {parent} is a file, not a folder; choose another folder or move the file"
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"{what} {path}: the folder cannot be created ({error.strerror or error}); choose a "
                              "folder you can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: the folder cannot be written (no permission); choose a folder you "
                              "can write")
    return path


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """A file path that can be written: its folder exists or can be created, and it is not a folder, a device
    or a special file (e.g. under /proc). An existing file of the same name is replaced by the caller."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the file to write")
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a device, pipe or socket); give a file to write")
    check_output_folder(path.parent, f"{what} {path}: its folder")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as error:
        raise PermissionError(f"{what} {path} cannot be written ({error.strerror or error}); choose a file in a "
                              "folder you can write") from None
    if not existed:
        path.unlink()
    elif Path("/proc") in path.resolve().parents:
        raise ValueError(f"{what} {path} is a file of the kernel's /proc, not a place for output; choose another file")
    return path


def read_checkpoint(path: str | os.PathLike, what: str = "--ckpt_path") -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (tensors only, no code), or explain why it is not one."""
    path = Path(path)
    fix = "give a .ckpt written by sampling-argmax fit or compare"
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the .ckpt file in it (e.g. {path}/checkpoints/{LAST})")
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {fix}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a device, pipe or socket); {fix}")
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except OSError as error:
        raise PermissionError(f"{what} {path} cannot be read ({error.strerror or error}); {fix}") from None
    if Path("/proc") in path.resolve().parents or Path("/sys") in path.resolve().parents:
        raise ValueError(f"{what} {path} is a file of the kernel (/proc, /sys), not a checkpoint; {fix}")
    if not first:
        raise ValueError(f"{what} {path} is empty (0 bytes): the run was killed while writing it; use an earlier "
                         "checkpoint of the same folder")
    state = load_tensors(path, what, fix)
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise ValueError(f"{what} {path} holds no model weights ('state_dict'); it is not a Lightning checkpoint: "
                         f"{fix}")
    empty = [k for k, v in state["state_dict"].items() if isinstance(v, torch.Tensor) and v.is_meta]
    if empty:
        raise ValueError(
            f"{what} {path} holds tensors without data (on the 'meta' device: {', '.join(empty[:3])}"
            f"{', ...' if len(empty) > 3 else ''}); it was saved from a model that was never materialized, so it "
            f"has no weights: {fix}"
        )
    return state


def check_checkpoint_folder(folder: str | os.PathLike, resume_from: str | os.PathLike | None, overwrite: bool
                            ) -> list[Path]:
    """Refuse to train into a folder holding another run's checkpoints; return the files ``--overwrite`` replaces.

    Allowed: an empty (or missing) folder; continuing from a checkpoint of this folder (``--resume``, or
    ``--ckpt_path`` inside it); ``overwrite`` (the returned files are deleted once the run holds the folder's
    lock, see :class:`RunLock`). Anything else raises :class:`FinishedRunError` naming both options.
    """
    folder = Path(folder)
    existing = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    if not existing:
        return []
    if resume_from is not None and Path(resume_from).resolve().parent == folder.resolve():
        if overwrite:
            raise ValueError("--resume continues the run in this folder and --overwrite deletes it; choose one")
        return []
    if overwrite:
        return existing
    names = ", ".join(p.name for p in existing[:4]) + (", ..." if len(existing) > 4 else "")
    raise FinishedRunError(
        f"{folder} already holds the checkpoints of an earlier run ({names}); nothing was changed. Pass --resume true "
        "to continue that run, --overwrite true to delete its checkpoints and train from scratch, or another "
        "--trainer.default_root_dir"
    )


def plain_config(value: Any) -> Any:
    """Config values as comparable plain data (Namespaces -> dicts, tuples -> lists, paths -> strings)."""
    if hasattr(value, "as_dict") and callable(value.as_dict):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def contradictions(recorded: Any, current: Any, may_change: set[str] | frozenset[str] = frozenset(),
                   prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, recorded value, current value) for every setting that differs between two configs.

    Nested dicts are compared key by key. A key that only one side has is left out (a setting added or
    removed by another version of the code; a changed class shows as its ``class_path``), and so is a key in
    ``may_change`` (settings that do not change the run, e.g. ``num_workers``).
    """
    recorded, current = plain_config(recorded), plain_config(current)
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = []
        for key in recorded:
            if key in current and key not in may_change:
                found += contradictions(recorded[key], current[key], may_change, f"{prefix}.{key}" if prefix else key)
        return found
    return [] if recorded == current else [(prefix, recorded, current)]


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
    """Exclusive lock on the run folder while a trainer works in it (global rank 0 takes it).

    ``replace``: checkpoints of an earlier run that ``fit --overwrite`` deletes, once the lock is held (so a
    run that is still writing them is never disturbed).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / "run.lock"
        self._handle = None
        self.replace: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            self.acquire(stage)
            if stage == "fit":  # --overwrite: the earlier run's checkpoints go only now, under the lock
                for path in self.replace:
                    path.unlink(missing_ok=True)
                self.replace = []

    def acquire(self, stage: str) -> None:
        """Take the folder's lock (again: nothing), or raise :class:`RunLockedError` naming the holder."""
        if self._handle is not None:
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
