"""The one Ctrl-C / SIGTERM mechanism (lit_diffusion.stop_signals), in this process: the signal becomes the
exception, its status is the shell's, an ignored signal stays ignored, and the handlers are restored after."""
from __future__ import annotations

import os
import signal

import pytest

from lit_diffusion.stop_signals import Interrupted, report_stop, stop_on_signals


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_inside_raises_interrupted_with_the_shells_status(sig, status):
    before = signal.getsignal(sig)
    if before is signal.SIG_IGN:
        pytest.skip("started with the signal ignored (a background job): covered by the next test")
    with pytest.raises(Interrupted) as caught:
        with stop_on_signals():
            os.kill(os.getpid(), sig)
    assert caught.value.signum == sig and caught.value.status == status
    assert signal.getsignal(sig) is before  # restored


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # nothing happens
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_plain_ctrl_c_is_reported_with_what_was_kept(capsys):
    status = report_stop("lit-diffusion data build", KeyboardInterrupt(), kept="nothing was written to out/")
    assert status == 130
    assert capsys.readouterr().err.strip() == \
        "lit-diffusion data build: stopped by Ctrl-C (SIGINT): nothing was written to out/"
    again = Interrupted.of(Interrupted(signal.SIGTERM), "3 of 4 shard(s) are kept")
    assert (again.signum, again.kept, again.status) == (signal.SIGTERM, "3 of 4 shard(s) are kept", 143)
