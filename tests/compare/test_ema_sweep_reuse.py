"""The EMA sweep does not score twice what the final table scored: at the sigma_rel the run trained with, the
reconstruction is the run's own EMA bit for bit, and then the table's score of that setting is taken."""
import types

import torch

from lit_diffusion.compare.ema_sweep import table_score
from lit_diffusion.compare.results import Setting
from lit_diffusion.compare.score import ScoreCache
from lit_diffusion.runs import RunDirectory


def test_the_table_score_is_taken_only_for_the_same_weights_and_metric(tmp_path):
    run, setting = RunDirectory(tmp_path), Setting("euler", None, 16)
    ScoreCache(run, 500).put(setting, False, {"fd": 12.076, "fingerprints": {"fd": "fp"}, "nfe": 16},
                             torch.zeros(2, 1, 4, 4))
    suite, metric = types.SimpleNamespace(num_samples=500), types.SimpleNamespace(name="fd", fingerprint="fp")
    live = {"w": torch.arange(4.0), "b": torch.ones(2)}
    assert table_score(suite, run, setting, metric, live, {k: v.clone() for k, v in live.items()}) == 12.076
    nudged = {"w": torch.arange(4.0) + 1e-7, "b": torch.ones(2)}  # a reconstruction off by one ulp is scored
    assert table_score(suite, run, setting, metric, live, nudged) is None
    other = types.SimpleNamespace(name="fd", fingerprint="another feature network")
    assert table_score(suite, run, setting, other, live, dict(live)) is None
    assert table_score(types.SimpleNamespace(num_samples=200), run, setting, metric, live, dict(live)) is None
    assert table_score(suite, run, Setting("euler", None, 8), metric, live, dict(live)) is None
