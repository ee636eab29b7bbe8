"""ShardDataModule: a LightningDataModule over WebDataset shards; deterministic and resumable.

The constructor arguments are the config schema. Batches are dicts (see ``decode.py``). Every
rank takes ``steps_per_epoch`` batches per epoch (see ``plan.py``), so DDP never waits on a rank
that ran out of data. ``state_dict()`` holds (epoch, batches consumed in it, seed, layout); the
Trainer saves it in checkpoints, and after ``load_state_dict`` the loader yields exactly the
batches that the interrupted run had not consumed yet. Validation is the Lightning-free
``OrderedShardReader`` (``ordered_reader.py``), the same stream that evaluation reads.
"""
from __future__ import annotations

import logging
import multiprocessing
from typing import Any, Iterator, Literal

import lightning.pytorch as pl

from lit_diffusion.distributed.process import process_group

from .decode import Transform
from .latent_decode import LatentSampleDecoder, train_decoder
from .latent_space import LatentSpace
from .ordered_reader import OrderedShardReader, make_loader, ordered_plan
from .plan import EpochPlan
from .reshard import EpochRest, RestIterable
from .stream import ShardIterable
from .urls import ShardSet, resolve_shards

log = logging.getLogger("lit_diffusion.data")

_LAYOUT_KEYS = ("seed", "world_size", "num_workers", "batch_size", "samples_per_epoch", "fingerprint")
_RESHARDABLE = {"world_size", "batch_size", "num_workers"}  # the machine's shape: the rest of an epoch is re-cut


class ShardDataModule(pl.LightningDataModule):
    """Stream training (and validation) batches from WebDataset shards.

    Args:
        train_shards: a folder with dataset.json, a dataset.json path/URL, or shard URLs (brace
            patterns, ``::``-joined lists, local paths, ``pipe:`` commands, http(s) URLs).
        val_shards: the same for the validation split (None: no validation loader).
        dataset_json: dataset.json of ``train_shards`` when it cannot be found beside them.
        val_dataset_json: the same for ``val_shards``.
        batch_size: samples per batch on each device (per rank).
        val_batch_size: validation batch size per device (None: ``batch_size``).
        num_workers: DataLoader worker processes per rank (0: read in the main process).
        shuffle_buffer: samples held by each worker's shuffle buffer (0 or 1: no buffer shuffle).
        shuffle_shards: visit shards in a new seeded order every epoch.
        seed: the stream is a function of (seed, epoch, rank, worker).
        hflip: random horizontal flip (probability 1/2) of training images or [C, H, W] tensors.
        transform: optional ``f(x, generator) -> x`` applied to each training sample after the
            conversion to float; it must draw randomness from ``generator`` (seeded per sample).
        labels: return ``label`` (None: when dataset.json has classes).
        decoder: image decoder, "torchvision" (torchvision.io, fast) or "pil".
        on_error: "raise" (default) stops at the first bad sample with an error naming the shard,
            key and problem; "skip" drops it, counts it (``skipped``) and logs a warning.
        samples_per_epoch: length of a training epoch in samples (None: the dataset size); more
            than the dataset wraps around into fresh shard orders (resampling).
        pin_memory: DataLoader ``pin_memory``.
        prefetch_factor: batches prefetched by each worker.
        rank: this process's rank when torch.distributed is not initialised (simulated ranks).
        world_size: the number of ranks in that case; give both or neither.
        image_key: shards without dataset.json: the image member (jpg, jpeg, png, webp, npy; None: the
            first of these in the first sample).
        label_key: shards without dataset.json: "cls", "json:FIELD" (a field of the json member) or
            "none" (None: cls when the first sample has one).
        num_classes: shards without dataset.json: the number of classes (None: largest label + 1).
        resolution: shards without dataset.json: center-crop and resize every image to R x R (None:
            the first image's size, which every image must have).
    """

    def __init__(
        self,
        train_shards: str,
        val_shards: str | None = None,
        dataset_json: str | None = None,
        val_dataset_json: str | None = None,
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        shuffle_buffer: int = 1000,
        shuffle_shards: bool = True,
        seed: int = 0,
        hflip: bool = False,
        transform: Transform | None = None,
        labels: bool | None = None,
        decoder: Literal["torchvision", "pil"] = "torchvision",
        on_error: Literal["raise", "skip"] = "raise",
        samples_per_epoch: int | None = None,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
        rank: int | None = None,
        world_size: int | None = None,
        image_key: str | None = None,
        label_key: str | None = None,
        num_classes: int | None = None,
        resolution: int | None = None,
    ):
        super().__init__()

        def bad(option: str, why: str):
            raise ValueError(f"ShardDataModule: {option}: {why}")

        if not train_shards:
            bad("train_shards", "required (a folder, a dataset.json or shard URLs)")
        if batch_size < 1:
            bad("batch_size", f"must be >= 1, got {batch_size}")
        if val_batch_size is not None and val_batch_size < 1:
            bad("val_batch_size", f"must be >= 1, got {val_batch_size}")
        if val_batch_size is not None and val_shards is None:
            bad("val_batch_size", "given without val_shards")
        if val_dataset_json is not None and val_shards is None:
            bad("val_dataset_json", "given without val_shards")
        if num_workers < 0:
            bad("num_workers", f"must be >= 0, got {num_workers}")
        if shuffle_buffer < 0:
            bad("shuffle_buffer", f"must be >= 0, got {shuffle_buffer}")
        if on_error not in ("raise", "skip"):
            bad("on_error", f"must be 'raise' or 'skip', got {on_error!r}")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            bad("samples_per_epoch", f"must be >= 1, got {samples_per_epoch}")
        if prefetch_factor < 1:
            bad("prefetch_factor", f"must be >= 1, got {prefetch_factor}")
        if (rank is None) != (world_size is None):
            bad("rank/world_size", "give both or neither")
        if world_size is not None and not 0 <= rank < world_size:
            bad("rank", f"must be in [0, world_size={world_size}), got {rank}")
        if decoder not in ("torchvision", "pil"):
            bad("decoder", f"must be 'torchvision' or 'pil', got {decoder!r}")
        if transform is not None and not callable(transform):
            bad("transform", f"must be callable, got {type(transform).__name__}")
        self.train_shards, self.val_shards = train_shards, val_shards
        self.dataset_json, self.val_dataset_json = dataset_json, val_dataset_json
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.shuffle_buffer, self.shuffle_shards = num_workers, shuffle_buffer, shuffle_shards
        self.seed, self.hflip, self.transform, self.labels = seed, hflip, transform, labels
        self.decoder, self.on_error, self.samples_per_epoch = decoder, on_error, samples_per_epoch
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor
        self.rank, self.world_size = rank, world_size
        self.infer = _infer_options(image_key, label_key, num_classes, resolution)
        self.train_set: ShardSet | None = None
        self.val_set: ShardSet | None = None
        self._epoch = 0  # epoch counter when no Trainer is attached
        self._progress = (0, 0)  # (epoch, batches consumed in it)
        self._resume: dict | None = None
        self._checked: tuple[int, int, EpochRest | None] | None = None  # _resume checked against this layout
        self._rest: tuple[int, int, EpochRest] | None = None  # (epoch, batches at its start, rest) being read
        self._skip_counter = None

    # ------------------------------------------------------------ setup

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            check = self.on_error == "raise"
            self.train_set = resolve_shards(self.train_shards, self.dataset_json, check_exists=check, infer=self.infer)
            info = self.train_set.info
            if self.hflip and (info.kind == "pair" or len(info.shape) != 3):
                raise ValueError(f"ShardDataModule: hflip: needs [C, H, W] images or tensors, the dataset is "
                                 f"kind {info.kind!r} with shape {info.shape}")
            if self.labels and not info.labeled:
                raise ValueError(f"ShardDataModule: labels: True but dataset.json has no classes "
                                 f"({self.train_shards}: num_classes 0, or no label member found)")
            if self.val_shards is not None:
                self.val_set = resolve_shards(self.val_shards, self.val_dataset_json, check_exists=check,
                                              infer=self.infer)
            self.train_plan()  # fail now if one batch per rank does not fit

    @property
    def info(self):
        """dataset.json of the training shards (after ``setup``)."""
        self.setup()
        return self.train_set.info

    def _rank_world(self) -> tuple[int, int]:
        group = process_group()  # the stream follows the process group's ranks once there is one
        if group is not None:
            rank, world = group
            if self.world_size is not None and (self.rank, self.world_size) != (rank, world):
                raise ValueError(f"ShardDataModule: rank/world_size={self.rank}/{self.world_size} contradict "
                                 f"torch.distributed ({rank}/{world})")
            return rank, world
        if self.world_size is not None:
            return self.rank, self.world_size
        return 0, 1

    def train_plan(self, world_size: int | None = None) -> EpochPlan:
        self.setup()
        world = self._rank_world()[1] if world_size is None else world_size
        return EpochPlan(tuple(self.train_set.counts), self.batch_size, world, self.num_workers, self.seed,
                         self.shuffle_shards, self.samples_per_epoch, pad=False)

    def val_plan(self, world_size: int | None = None) -> EpochPlan:
        """Validation (and evaluation) order: every sample once in stored order, padded to whole batches."""
        self.setup()
        if self.val_set is None:
            raise ValueError("ShardDataModule: val_plan: no val_shards")
        world = self._rank_world()[1] if world_size is None else world_size
        return ordered_plan(self.val_set.counts, self.val_batch_size, world, self.num_workers, self.seed)

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per rank per epoch."""
        return self.train_plan().steps

    @property
    def skipped(self) -> int:
        """Samples skipped (``on_error="skip"``) by this process and its loader workers so far."""
        return 0 if self._skip_counter is None else int(self._skip_counter.value)

    def _labels(self, info) -> bool:
        return info.labeled if self.labels is None else self.labels

    # ------------------------------------------------------------ loaders

    def current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch of the next training iteration (without a Trainer)."""
        self._epoch = epoch

    def train_dataloader(self) -> "ShardLoader":
        self.setup()
        self._ensure_skip_counter()
        return ShardLoader(self)

    def val_dataloader(self):
        self.setup()
        if self.val_set is None:
            return []
        self._ensure_skip_counter()
        return self.val_reader()

    def val_reader(self) -> OrderedShardReader:
        """The validation loader: this rank's share of the validation split in stored order."""
        self.setup()
        if self.val_set is None:
            raise ValueError("ShardDataModule: val_reader: no val_shards")
        rank, world = self._rank_world()
        reader = OrderedShardReader(self.val_set, self.val_batch_size, self.num_workers, rank, world,
                                    labels=self._labels(self.val_set.info), decoder=self.decoder,
                                    on_error=self.on_error, skip_counter=self._skip_counter, seed=self.seed,
                                    pin_memory=self.pin_memory, prefetch_factor=self.prefetch_factor)
        if LatentSpace.of_dataset(self.val_set.info) is not None:  # validation: normalised posterior means, no draw
            reader.decoder = LatentSampleDecoder(self.val_set.info, reader.decoder.labels, draw=False)
        return reader

    def train_epoch(self) -> Iterator[dict]:
        """The training batches of the current epoch, from the resume point if one was loaded.

        Records progress as batches are consumed (for ``state_dict``) and moves to the next epoch
        at the end (without a Trainer).
        """
        epoch = self.current_epoch()
        start, rest = self._start_batch(epoch)
        skipped_before = self.skipped
        self._progress = (epoch, start)
        self._rest = None if rest is None else (epoch, start, rest)
        iterable = self._make_iterable(True, epoch, start) if rest is None else self._rest_iterable(epoch, rest)
        for batch in make_loader(iterable, self.num_workers, self.pin_memory, self.prefetch_factor):
            self._progress = (epoch, self._progress[1] + 1)
            yield batch
        self._epoch = epoch + 1
        if self.skipped > skipped_before:
            log.warning("epoch %d: on_error=skip skipped %d sample(s) (%d in total so far)", epoch,
                        self.skipped - skipped_before, self.skipped)

    def _ensure_skip_counter(self) -> None:
        if self._skip_counter is None:  # shared with loader workers, so their skips are counted here
            self._skip_counter = multiprocessing.Value("q", 0)

    def _make_iterable(self, train: bool, epoch: int, start_batch: int) -> ShardIterable:
        """The iterable behind a loader (tests drive its workers directly); validation is always a
        whole pass, so ``epoch`` and ``start_batch`` apply to training only."""
        if not train:
            return self.val_reader().dataset()
        rank, world = self._rank_world()
        return self._stream(self.train_plan(world), rank, epoch, start_batch)

    def _stream(self, plan: EpochPlan, rank: int, epoch: int, start_batch: int) -> ShardIterable:
        # latent shards draw from their stored posterior per (seed, epoch, key) and flip by latent choice
        decoder, hflip = train_decoder(self.train_set.info, self._labels(self.train_set.info), self.decoder,
                                       self.seed, epoch, self.hflip)
        return ShardIterable(self.train_set.urls, plan, decoder, rank, epoch, start_batch,
                             shuffle_buffer=self.shuffle_buffer, hflip=hflip, transform=self.transform,
                             on_error=self.on_error, skip_counter=self._skip_counter)

    def _rest_iterable(self, epoch: int, rest: EpochRest) -> RestIterable:
        """The rest of an epoch begun under another layout, re-cut for this one (``reshard.py``)."""
        rank, world = self._rank_world()
        origin = [self._stream(rest.origin, r, epoch, 0) for r in range(rest.origin.world_size)]
        return RestIterable(rest, origin, rank, world, self.batch_size)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_skip_counter"] = None  # a shared counter cannot be pickled; a copy counts afresh
        return state

    # ------------------------------------------------------------ resumable state

    def _layout(self) -> dict:
        return {"seed": self.seed, "world_size": self._rank_world()[1], "num_workers": self.num_workers,
                "batch_size": self.batch_size, "samples_per_epoch": self.samples_per_epoch,
                "fingerprint": self.info.fingerprint}

    def epoch_length(self, epoch: int | None = None) -> int:
        """Training batches per rank of ``epoch`` (default: the current one): ``steps_per_epoch``, except for
        an epoch resumed under another layout, where it is the batches done before plus the rest re-cut."""
        epoch = self.current_epoch() if epoch is None else epoch
        if self._resume is not None:
            self._checked = self._checked or self._check_resume(self._resume)
            done, rest = self._checked[1:] if self._checked[0] == epoch else (0, None)
        else:
            done, rest = (self._rest[1], self._rest[2]) if self._rest and self._rest[0] == epoch else (0, None)
        if rest is None:
            return self.steps_per_epoch
        return done + rest.steps(self._rank_world()[1], self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """Position of the training stream: epoch, batches consumed in it, and the layout (and, for an epoch
        resumed under another layout, what is left of it: ``reshard.py``)."""
        epoch, batches = self._progress
        rest = None
        if self._resume is not None:  # restored and not iterated yet
            self._checked = self._checked or self._check_resume(self._resume)
            epoch, batches, rest = self._checked
        elif self._rest is not None and self._rest[0] == epoch:
            _, start, rest = self._rest
            rest = rest.consumed(batches - start, self._rank_world()[1], self.batch_size)
        if batches >= self.epoch_length(epoch):
            epoch, batches, rest = epoch + 1, 0, None
        state = {"epoch": epoch, "batches": batches, **self._layout()}
        return state if rest is None else {**state, "rest": rest.to_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume: the next training iteration of epoch ``state["epoch"]`` skips consumed batches."""
        missing = [k for k in ("epoch", "batches", *_LAYOUT_KEYS) if k not in state_dict]
        if missing:
            raise ValueError(f"ShardDataModule.load_state_dict: state lacks {missing}")
        self._resume, self._checked, self._rest = dict(state_dict), None, None
        self._progress = (0, 0)
        self._epoch = int(state_dict["epoch"])

    def _start_batch(self, epoch: int) -> tuple[int, EpochRest | None]:
        """Batches of ``epoch`` consumed before, and the rest to read when the layout changed since."""
        if self._resume is None:
            return 0, None
        checked = self._checked or self._check_resume(self._resume)
        self._resume, self._checked = None, None
        saved_epoch, batches, rest = checked
        if saved_epoch != epoch:
            log.warning("data state is for epoch %d but epoch %d starts; starting it from its first batch",
                        saved_epoch, epoch)
            return 0, None
        return batches, rest

    def _check_resume(self, state: dict) -> tuple[int, int, EpochRest | None]:
        """(epoch, batches, rest) of a saved state under this layout; raises when the stream cannot go on."""
        layout = self._layout()
        diff = {k: (state[k], layout[k]) for k in _LAYOUT_KEYS if state[k] != layout[k]}
        epoch, batches = int(state["epoch"]), int(state["batches"])
        # why: the per-rank batch may change only with the world size (to keep the global batch on fewer or more
        # ranks); alone it would change the optimisation the run was started with
        refused = set(diff) - _RESHARDABLE | ({"batch_size"} & set(diff) if "world_size" not in diff else set())
        if refused:
            changes = ", ".join(f"--data.{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items()
                                if k in refused - {"fingerprint"})
            if "fingerprint" in diff:
                changes += (", " if changes else "") + "the dataset's fingerprint differs (other shards)"
            raise ValueError(f"ShardDataModule: cannot resume the data stream, its layout changed ({changes}); "
                             f"resume with the saved values, or start a new run without --ckpt_path")
        if state.get("rest") is not None:  # an epoch already resumed under another layout: go on with its rest
            return epoch, batches, EpochRest.from_state(state["rest"], self.train_plan())
        if set(diff) == {"num_workers"}:
            # why: the worker count is a machine detail (fewer CPUs after a requeue); the step count does not
            # depend on it, only which samples fill the rest of this epoch, so continue rather than refuse
            log.info("data.num_workers changed from %d to %d: the rest of epoch %d is drawn with the new worker "
                     "layout (same steps; exact resume needs the same num_workers)", *diff["num_workers"], epoch)
        elif diff and batches > 0:
            # why: another world size (a job requeued on fewer GPUs) or per-rank batch: re-cut the rest of the
            # epoch from the saved layout's own order (reshard.py); the next epoch is planned for this one
            origin = {k: state[k] for k in _RESHARDABLE}
            rest = EpochRest.from_state({**origin, "done": batches, "offset": 0}, self.train_plan())
            log.info("data layout changed (%s): the rest of epoch %d (%d samples) is re-sharded in the saved "
                     "order", ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items()), epoch, rest.samples)
            return epoch, batches, rest
        return epoch, batches, None


def _infer_options(image_key, label_key, num_classes, resolution):
    """InferOptions for shards without dataset.json (None when none is given: plain defaults then)."""
    from .infer import InferOptions

    given = dict(image_key=image_key, label_key=label_key, num_classes=num_classes, resolution=resolution)
    if all(v is None for v in given.values()):
        return None
    try:
        return InferOptions(**given)
    except ValueError as error:
        raise ValueError(f"ShardDataModule: {error}") from None


class ShardLoader:
    """The training loader: one epoch per ``iter()``, ``len()`` batches; Lightning saves its state.

    A thin adapter: the DataModule owns the stream position, this only forwards to its public API.
    """

    def __init__(self, dm: ShardDataModule):
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.epoch_length()

    def __iter__(self) -> Iterator[dict]:
        return self.dm.train_epoch()

    def state_dict(self) -> dict[str, Any]:
        return self.dm.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self.dm.load_state_dict(state_dict)
