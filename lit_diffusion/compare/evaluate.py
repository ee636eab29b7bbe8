"""The evaluation of a comparison's runs side by side: each objective x seed is scored (final table, quality vs
compute, post-hoc EMA sweep) in its own worker thread, `train.local_slots()` at a time, each on one intra-op
thread. Every score is computed as it would be alone: the noise, the stochastic samplers and the bootstrap draw
from their own seeded generators, a model is built under one lock (its initialisation draws from the global RNG),
and one thread per operation keeps float reductions the same whatever the machine's cores or load."""
from __future__ import annotations

import contextlib
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import torch

from lit_diffusion.compare.curve import score_curve
from lit_diffusion.compare.ema_sweep import sweep_run
from lit_diffusion.compare.score import STOP, score_run
from lit_diffusion.compare.suite import Suite
from lit_diffusion.compare.train import local_slots
from lit_diffusion.compare.tuning import pretraining


@contextlib.contextmanager
def one_intra_op_thread():
    """Within: torch runs each CPU operation on the calling thread alone (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_all(suite: Suite, metrics: list, reference, per_image: dict[str, float], log=print
                 ) -> tuple[list, list, list]:
    """(score rows, curve points, EMA-sweep points) of every objective x seed, in suite order."""
    for metric in metrics:  # the reference statistics once, before the workers share them (cached: no-op here)
        if getattr(metric, "feature_net", None) is not None:
            reference.stats(metric.feature_net)
    jobs = [(e, s) for e in suite.objectives for s in suite.seeds]

    def evaluate(entry, seed):
        rows = score_run(suite, entry, seed, metrics, reference, log)
        curve = score_curve(suite, entry, seed, per_image[entry.name], metrics[0], reference, log,
                            pretraining(suite, entry, seed, per_image))
        return rows, curve, sweep_run(suite, entry, seed, metrics[0], reference, log)

    slots = min(local_slots()[0], len(jobs)) if not torch.cuda.is_available() else 1
    STOP.clear()
    with one_intra_op_thread() if not torch.cuda.is_available() else contextlib.nullcontext():
        pool = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="evaluate")
        futures = [pool.submit(evaluate, e, s) for e, s in jobs]
        try:
            while True:  # woken every half second, so that Ctrl-C reaches this thread
                done, running = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                failed = [f for f in futures if f in done and f.exception() is not None]
                if failed:  # the first in suite order
                    raise failed[0].exception()
                if not running:
                    break
            results = [future.result() for future in futures]
        finally:  # interrupted or failed: the workers stop at their next score, each cache stays whole
            STOP.set()
            pool.shutdown(wait=True, cancel_futures=True)
            STOP.clear()
    return ([row for rows, _, _ in results for row in rows], [p for _, curve, _ in results for p in curve],
            [p for _, _, sweep in results for p in sweep])

