"""Issue 16, faults 1, 5 and 6: for every way a fit stops, running the same command again (with
`--ckpt_path last`, and a raised limit where the stop was the limit) ends bitwise where an uninterrupted run
ends (weights, EMA, optimiser, noise generator), and the CSV log holds every step exactly once."""
import signal

import pytest

from fault_helpers import (SIGNALS, assert_same_training_state, checkpoint_files, csv_steps, fit, load_last,
                                  signal_and_wait, start_fit, wait_for_checkpoint)

N = 24  # steps of the uninterrupted run: 4 epochs, so every stop below falls mid-epoch
EVERY = ("--checkpoint_every_n_steps", "4")  # signal tests wait for the step-4 checkpoint before signalling


def _straight(tmp_path_factory, shards, workers):
    root = tmp_path_factory.mktemp(f"straight{workers}") / "run"
    assert fit(root, shards, "--trainer.max_steps", str(N), *EVERY, workers=workers) == 0
    assert csv_steps(root) == list(range(N))
    return load_last(root)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, digits_shards):
    """The uninterrupted runs, by loader worker count (the data stream depends on it), built when first asked."""
    runs = {}

    def get(workers: int) -> dict:
        if workers not in runs:
            runs[workers] = _straight(tmp_path_factory, digits_shards, workers)
        return runs[workers]
    return get


def _finish_and_compare(root, shards, straight_state, *extra, workers=0):
    assert fit(root, shards, "--trainer.max_steps", str(N), *EVERY, "--ckpt_path", "last", *extra, workers=workers) == 0
    assert_same_training_state(straight_state, load_last(root))
    assert csv_steps(root) == list(range(N)), "every step logged exactly once over the stop and the resume"
    assert "last-v1.ckpt" not in checkpoint_files(root)


def test_max_steps_reached_then_extended(tmp_path, digits_shards, straight):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "9", *EVERY) == 0  # step 9: no periodic save there
    last = load_last(root)
    assert last["global_step"] == 9 and last["lit_diffusion_run"]["fit_finished"]
    _finish_and_compare(root, digits_shards, straight(0))


def test_max_images_reached_then_extended(tmp_path, digits_shards, straight):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--model.max_images", str(11 * 32), *EVERY) == 0
    assert load_last(root)["global_step"] == 11
    # the LR schedule is constant, so the budget does not change the trajectory: extend it to N steps' worth
    assert fit(root, digits_shards, "--model.max_images", str(N * 32), *EVERY, "--ckpt_path", "last") == 0
    assert_same_training_state(straight(0), load_last(root))
    assert csv_steps(root) == list(range(N))


def test_max_time_reached_then_extended(tmp_path, digits_shards, straight):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", str(N), *EVERY, "--trainer.max_time", "00:00:00:02",
               "--trainer.callbacks+=fault_helpers.SlowSteps") == 0  # 24 steps of >= 0.25 s cannot end in 2 s
    stopped = load_last(root)
    assert 0 < stopped["global_step"] < N and stopped["lit_diffusion_run"]["fit_finished"]
    _finish_and_compare(root, digits_shards, straight(0), "--trainer.max_time", "00:01:00:00")


@pytest.mark.parametrize("name,workers,group", [("SIGTERM", 0, False), ("SIGINT", 0, False), ("SIGUSR1", 0, False),
                                                ("SIGTERM", 2, True), ("SIGINT", 2, True)])
def test_signal_checkpoints_at_the_next_step_and_resumes_exactly(tmp_path, digits_shards, straight, name, workers,
                                                                  group):
    root = tmp_path / "run"
    child = start_fit(root, digits_shards, "--trainer.max_steps", str(N), *EVERY, workers=workers, new_group=group)
    wait_for_checkpoint(root, 4, child)
    code = signal_and_wait(child, SIGNALS[name], group=group)
    log = (tmp_path / "run.log").read_text(errors="replace")
    assert code == 128 + SIGNALS[name], log[-3000:]  # the run did not finish: say so to the shell / scheduler
    assert "Traceback" not in log, log[-3000:]  # the loader workers did not crash the shutdown
    stopped = load_last(root)
    assert 4 <= stopped["global_step"] < N and not stopped["lit_diffusion_run"]["fit_finished"]
    _finish_and_compare(root, digits_shards, straight(workers), workers=workers)


def test_kill_9_after_a_checkpoint_resumes_exactly(tmp_path, digits_shards, straight):
    root = tmp_path / "run"
    child = start_fit(root, digits_shards, "--trainer.max_steps", str(N), *EVERY)
    wait_for_checkpoint(root, 8, child)
    assert signal_and_wait(child, signal.SIGKILL) == -signal.SIGKILL
    _finish_and_compare(root, digits_shards, straight(0))
