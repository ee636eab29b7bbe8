"""The trainings of a comparison: every objective x seed on the shared budget, each from one composed fit
config (RUN/fit.yaml) in its own process, locally in turn or as one SLURM job array. Finished runs are not
trained again; unfinished ones resume from their last checkpoint."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
import yaml

from lit_diffusion.stop_signals import raise_interrupted
from lit_diffusion.compare.results import TrainRecord
from lit_diffusion.compare.run_config import check_unchanged
from lit_diffusion.compare.suite import ObjectiveEntry, Suite
from lit_diffusion.compare.tuning import own_images, pretraining
from lit_diffusion.runs import Budget, MetricsLog, RunDirectory, read_record


def finished(suite: Suite, entry: ObjectiveEntry, seed: int) -> bool:
    """Whether the run's last checkpoint has used up its budget (images, FLOPs as images, or wall-clock time;
    a tuned run's images are what its pre-training left)."""
    last = suite.run(entry.name, seed).last_checkpoint
    return last.is_file() and Budget(max_images=own_images(suite, entry, seed),
                                     max_time_seconds=suite.max_time_seconds).reached(read_record(last)) is not None


def checkpoint_spacing(suite: Suite, max_images: int, batch_size: int, log_every: int) -> dict:
    """Settings that keep `suite.curve_points` evenly spaced checkpoints of the run (one rank's batch: with more
    ranks the run takes fewer steps and keeps fewer points) for the quality-vs-compute curve. The spacing is a
    multiple of the logging interval: numbered checkpoints are ranked by train/loss, which exists only at log
    steps (elsewhere Lightning writes last.ckpt alone)."""
    if suite.curve_points < 1:
        return {}
    steps = max(1, -(-max_images // batch_size))
    every = -(-steps // suite.curve_points)
    return {"checkpoint_every_n_steps": max(1, -(-every // log_every)) * log_every, "keep_checkpoints": -1}


def fit_config(suite: Suite, entry: ObjectiveEntry, seed: int, extra_overrides: list[str] = (),
               max_images: int | None = None) -> dict:
    """The full fit config of one run: base config, objective config, the suite's settings for this run, then
    the suite's and the objective's overrides (CLI strings, as users write them in suites). A tuned run starts
    from its pre-training's checkpoint (`init_from`), which with `tune_from.teacher` is also its objective's
    teacher_checkpoint. `max_images` replaces the run's image budget and leaves out a tuned run's start checkpoint
    (the FLOP probe builds the model before budgets in FLOPs are resolved and before earlier runs have trained;
    a run with a teacher is probed later, from its full config: compute.measure_teacher_steps)."""
    from lit_diffusion.training.config import compose_fit_config  # Lightning is loaded only when training

    model = {"seed": seed}
    if max_images is None and entry.tune_from is not None:
        start = pretraining(suite, entry, seed)
        model["init_from"] = start.checkpoint
        if entry.tune_from.teacher:  # a distillation round: the start is also the teacher
            model["objective"] = {"init_args": {"teacher_checkpoint": start.checkpoint}}
        max_images = suite.max_images_for(entry.name) - start.images_seen
    max_images = max_images or suite.max_images_for(entry.name)
    settings = {"seed_everything": seed, "preview_every_n_steps": 0,
                "data": {"train_shards": suite.shards},
                "trainer": {"default_root_dir": str(suite.run_dir(entry.name, seed))}
                | ({"max_time": suite.max_time} if suite.max_time else {}),
                "model": {"max_images": max_images, **model}}
    overrides = [*suite.overrides, *entry.overrides, *extra_overrides]
    config = compose_fit_config([suite.base_config, entry.config], overrides, settings)
    batch_size = int(config["data"]["batch_size"])
    spacing = checkpoint_spacing(suite, max_images, batch_size, int(config["trainer"].get("log_every_n_steps") or 1))
    if spacing and not any(o.startswith(("--checkpoint_every_n_steps", "--keep_checkpoints")) for o in overrides):
        config |= spacing  # the suite's own overrides of these win
    if suite.ema_sweep:  # the sweep reconstructs EMA lengths from snapshots: store them during training
        from lit_diffusion.compare.ema_sweep import SNAPSHOT_EVERY_FRACTION, snapshot_callback

        steps = max(1, -(-max_images // batch_size))
        every = max(1, round(steps * SNAPSHOT_EVERY_FRACTION))
        config["trainer"]["callbacks"] = list(config["trainer"].get("callbacks") or []) + [snapshot_callback(every)]
    return config


def write_fit_config(config: dict, path) -> None:
    """RUN/fit.yaml, whole or not at all (it is also the record of what the run trained from: run_config.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(partial, path)


def record_training(suite: Suite, entry: ObjectiveEntry, seed: int, flops_per_image: dict[str, float] | None = None
                    ) -> TrainRecord:
    """RUN/train.json from the last checkpoint: wall time in fit (summed over resumes), images, parameters,
    training FLOPs (the measured FLOPs per image of a step x images seen, all ranks); a tuned run's record
    includes its pre-training (flops_per_image: objective -> measured FLOPs per image)."""
    run = suite.run(entry.name, seed)
    record = TrainRecord.from_checkpoint(read_record(run.last_checkpoint),
                                         (flops_per_image or {}).get(entry.name, 0.0),
                                         pretraining(suite, entry, seed, flops_per_image))
    record.write(run)
    return record


def progress(run: RunDirectory, max_images: int) -> str | None:
    """"images seen of the budget, loss[, raw error]" from the newest CSV log row, once it has both."""
    row = MetricsLog(run).latest_row() or {}
    if not row.get("train/images_seen") or not row.get("train/loss"):
        return None
    seen = int(float(row["train/images_seen"]))
    line = f"{seen:,} / {max_images:,} images ({100 * seen / max_images:.0f}%), loss {float(row['train/loss']):.4f}"
    raw = row.get("train/raw_error")  # an adaptively weighted objective's unweighted error: its loss stays near 1
    return line + (f", raw error {float(raw):.4g}" if raw else "")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the comparison process dies, however it dies (kill -9 too), so
    that no training outlives its comparison; SIGTERM makes the training checkpoint and stop (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_child(command: list[str], out, env: dict) -> subprocess.Popen:
    """A training child in its own process group (so that a signal to it reaches its data-loader workers and a
    Ctrl-C at the terminal reaches only the comparison, which then stops it) that dies with this process."""
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            preexec_fn=_die_with_parent)


def stop_child(child: subprocess.Popen, grace_seconds: float = 60.0) -> None:
    """SIGTERM to the child's group (it checkpoints at the next step and exits), then SIGKILL after the grace."""
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def local_slots() -> tuple[int, dict]:
    """(trainings run side by side, the environment of each child). On the CPU: one per core this process may
    use, each with ONE intra-op thread, so that a run's arithmetic (and so its figures) does not depend on the
    machine's core count or load, and a loaded machine does not thrash (two OpenMP threads per process on a busy
    2-core machine ran a small training loop 10x slower than one). On a GPU: one at a time, as before, with this
    process's thread count."""
    if torch.cuda.is_available():
        return 1, {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores), {"OMP_NUM_THREADS": "1"}


class LocalTraining:
    """One training child (RUN/fit.yaml, output to RUN/train.log) and its progress lines."""

    def __init__(self, suite: Suite, entry: ObjectiveEntry, seed: int, env: dict, log=print):
        self.suite, self.entry, self.seed, self.log = suite, entry, seed, log
        self.run = run = suite.run(entry.name, seed)
        resume = run.checkpoints.is_dir()
        write_fit_config(fit_config(suite, entry, seed), run.fit_config)
        args = ["fit", "--config", str(run.fit_config)] + (["--ckpt_path", "last"] if resume else [])
        self.max_images = own_images(suite, entry, seed)
        start = "" if entry.tune_from is None else \
            f" from {entry.tune_from.objective}'s checkpoint at {suite.max_images_for(entry.name) - self.max_images:,} images"
        log(f"[{entry.name} seed {seed}] training{start}{' (resuming)' if resume else ''} to {self.max_images:,} "
            f"images, log {run.train_log}:\n  python -m lit_diffusion.training.cli {' '.join(args)}")
        self.shown = None
        self.out = open(run.train_log, "a")
        self.child = start_child([sys.executable, "-m", "lit_diffusion.training.cli", *args], self.out,
                                 dict(os.environ, **env))

    def report(self) -> None:
        line = progress(self.run, self.max_images)
        if line and line != self.shown:
            self.log(f"[{self.entry.name} seed {self.seed}] {line}")
            self.shown = line

    def stop(self) -> None:
        stop_child(self.child)
        self.out.close()

    def check(self) -> None:
        """Raise if the child failed or stopped short of its budget (its checkpoints stay: a rerun resumes)."""
        code = self.child.returncode
        if code != 0 or not finished(self.suite, self.entry, self.seed):
            tail = "\n".join(self.run.train_log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"training {self.entry.name} (seed {self.seed}) failed with exit status {code}; the "
                               f"last lines of {self.run.train_log}:\n{tail}\nIts checkpoints stay in "
                               f"{self.run.root}: run the suite again to resume it")


def train_locally(suite: Suite, runs: list[tuple[ObjectiveEntry, int]], log=print, poll_seconds: float = 10.0,
                  order=None) -> None:
    """Every run of `runs`, each in its own process (memory and threads start clean each time, as on a cluster),
    `local_slots()` at a time; a tuned run starts once the run it tunes from has finished. `order(entry)`: a
    run's priority among those ready (the longest first keeps both slots busy to the end); suite order by default.
    A progress line per run every `poll_seconds`. Interrupted (Ctrl-C, or SIGTERM which the comparison turns into
    the same), or when one run fails, the others are stopped too (they checkpoint first)."""
    slots, env = local_slots()
    pending, running = list(runs), []
    previous = signal.signal(signal.SIGTERM, raise_interrupted) if _main_thread() else None
    try:
        while pending or running:
            waiting = {(e.name, s) for e, s in pending + [(t.entry, t.seed) for t in running]}  # not finished yet
            ready = [(e, s) for e, s in pending if e.tune_from is None or (e.tune_from.objective, s) not in waiting]
            ready.sort(key=lambda run: -order(run[0]) if order else 0)  # stable: suite order among equals
            while ready and len(running) < slots:
                entry, seed = ready.pop(0)
                pending.remove((entry, seed))
                running.append(LocalTraining(suite, entry, seed, env, log))
            deadline = time.monotonic() + poll_seconds
            while running and all(t.child.poll() is None for t in running) and time.monotonic() < deadline:
                time.sleep(0.2)
            for training in list(running):
                if training.child.poll() is None:
                    training.report()
                    continue
                running.remove(training)
                training.stop()
                training.check()
    finally:
        for training in running:
            training.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def train_on_slurm(suite: Suite, pending: list[tuple[ObjectiveEntry, int]], log=print) -> None:
    from lit_diffusion.compare import slurm_array

    extra = suite.slurm.trainer_overrides()  # the Trainer must agree with the allocation
    configs = [(e, s, fit_config(suite, e, s, extra)) for e, s in pending]
    for entry, seed, config in configs:  # the record of what each run trains from (run_config.py)
        write_fit_config(config, suite.run(entry.name, seed).fit_config)
    job_id = slurm_array.submit_array(suite, configs, log)
    slurm_array.wait_for_array(job_id, log)
    failed = [(e, s) for e, s in pending if not finished(suite, e, s)]
    if failed:
        where = "; ".join(f"{e.name} seed {s}: {slurm_array.task_log(suite, e.name, s)}" for e, s in failed)
        raise RuntimeError(f"job array {job_id}: {len(failed)} training(s) did not finish ({where}); run the "
                           "suite again to resubmit them (they resume from their last checkpoint)")


def _training_cost(suite: Suite, entry: ObjectiveEntry, costs: dict) -> float:
    """A run's measured training FLOPs plus those of the runs tuned from it (which can only start after it)."""
    def own(e: ObjectiveEntry) -> float:
        cost = costs.get(e.name)
        images = suite.max_images_for(e.name) - (e.tune_from.images if e.tune_from else 0)  # a tuned run's own
        return 0.0 if cost is None else cost.flops_per_image * images
    return own(entry) + sum(own(e) for e in suite.objectives if e.tune_from and e.tune_from.objective == entry.name)


def train_all(suite: Suite, log=print, costs: dict | None = None) -> None:
    """Train every unfinished run (locally in turn, or as one SLURM array; record_all then writes their records).
    costs: objective -> compute.StepCost, to start the costliest runs first."""
    costs = costs or {}
    runs = [(e, s) for e in suite.objectives for s in suite.seeds]
    extra = suite.slurm.trainer_overrides() if suite.launcher == "slurm" else []
    for entry, seed in runs:  # a run trained from another config than its entry's today: refused before any training
        if suite.run(entry.name, seed).fit_config.is_file():
            check_unchanged(suite, entry, seed, fit_config(suite, entry, seed, extra))
    if suite.launcher == "slurm":
        from lit_diffusion.compare import slurm_array

        job_id = slurm_array.earlier_array(suite)
        if job_id:
            log(f"[slurm] job array {job_id} from an earlier start is still running: waiting for it")
            slurm_array.wait_for_array(job_id, log)
    pending = []
    for entry, seed in runs:
        if finished(suite, entry, seed):
            log(f"[{entry.name} seed {seed}] finished earlier: not trained again")
        else:
            pending.append((entry, seed))
    if suite.launcher != "slurm":
        train_locally(suite, pending, log, order=lambda entry: _training_cost(suite, entry, costs))
        pending = []
    while pending:  # in waves: a tuned run waits for the run it starts from
        ready = [(e, s) for e, s in pending if e.tune_from is None
                 or all((e.tune_from.objective, s) != (p.name, ps) for p, ps in pending)]
        train_on_slurm(suite, ready, log)
        pending = [run for run in pending if run not in ready]


def record_all(suite: Suite, costs: dict) -> dict[tuple[str, int], TrainRecord]:
    """Every run's RUN/train.json from its last checkpoint; {(objective, seed): record}. costs: objective ->
    compute.StepCost, for the records' FLOPs."""
    per_image = {name: cost.flops_per_image for name, cost in costs.items()}
    return {(e.name, s): record_training(suite, e, s, per_image) for e in suite.objectives for s in suite.seeds}
