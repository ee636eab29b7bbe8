"""Two real torch.distributed ranks (gloo on CPU): reference statistics, evaluate_samples (both
ways of sharing the samples), sample generation and the classifier cache give what one process
gives, and every rank gets the same answer."""
from __future__ import annotations

import textwrap

import pytest
import torch

from eval_helpers import SMALL, read_all
from gloo_ranks import run_ranks
from lit_diffusion.evaluation.features import ClassifierConfig, load_or_train_classifier
from lit_diffusion.evaluation.generate import generate_samples
from lit_diffusion.evaluation.metrics import evaluate_samples
from lit_diffusion.evaluation.reference import reference_stats

TINY = dict(epochs=1, batch_size=64, width=4, hidden=8)

SCRIPT = textwrap.dedent("""
    import datetime, sys
    import torch, torch.distributed as dist
    from lit_diffusion.evaluation._dist import share
    from lit_diffusion.evaluation.features import ClassifierConfig, load_or_train_classifier
    from lit_diffusion.evaluation.generate import generate_samples
    from lit_diffusion.evaluation.metrics import evaluate_samples
    from lit_diffusion.evaluation.reference import reference_stats

    rank, world, port, train, val, cache, fresh, samples, out_prefix = sys.argv[1:]
    rank, world = int(rank), int(world)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    net = load_or_train_classifier(train, val, cache, ClassifierConfig(**SMALL), num_workers=0)  # rank 0 loads
    tiny = load_or_train_classifier(train, None, fresh, ClassifierConfig(**TINY), num_workers=2)  # rank 0 trains
    ref = reference_stats(net, train, cache_dir=fresh, kid_pr_samples=500, batch_size=64, num_workers=2)
    x, y = torch.load(samples)
    full = evaluate_samples(x, net, ref, labels=y)
    a, b = share(x.shape[0], rank, world)
    local = evaluate_samples(x[a:b], net, ref, labels=y[a:b], local_samples=True)
    gen, gen_labels = generate_samples(lambda n, c: torch.tanh(n) * (c[:, None, None, None] + 1) / 10, (1, 8, 8), 37,
                                       batch_size=5, seed=3, num_classes=10)
    torch.save({"fp": net.fingerprint, "tiny": tiny.fingerprint, "mu": ref["mu"], "sigma": ref["sigma"],
                "kept": ref["features_for_kid_pr"], "num": ref["num"], "full": full, "local": local, "gen": gen,
                "gen_labels": gen_labels}, f"{out_prefix}{rank}.pt")
    dist.destroy_process_group()
""")


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(digits, digits_net, cache_dir, tmp_path):
    x, y = read_all(digits["val"])
    torch.save((x, y), tmp_path / "samples.pt")
    script = tmp_path / "rank.py"
    script.write_text(f"SMALL = {SMALL!r}\nTINY = {TINY!r}\n" + SCRIPT)
    fresh = tmp_path / "fresh_cache"
    # each rank writes OUT_PREFIX + its rank + ".pt"
    run_ranks(script, [digits["train"], digits["val"], cache_dir, fresh, tmp_path / "samples.pt", tmp_path / "out"],
              timeout=300, LIT_DIFFUSION_CACHE=str(tmp_path / "env_cache"))
    outs = [torch.load(tmp_path / f"out{r}.pt") for r in (0, 1)]

    # one process, the same computations
    ref = reference_stats(digits_net, digits["train"], cache_dir=tmp_path / "single", kid_pr_samples=500)
    single = evaluate_samples(x, digits_net, ref, labels=y)
    gen, gen_labels = generate_samples(lambda n, c: torch.tanh(n) * (c[:, None, None, None] + 1) / 10, (1, 8, 8), 37,
                                       batch_size=4, seed=3, num_classes=10)
    tiny = load_or_train_classifier(digits["train"], None, tmp_path / "single", ClassifierConfig(**TINY), num_workers=0)
    for o in outs:
        assert o["fp"] == digits_net.fingerprint  # rank 1 got rank 0's cached weights
        assert o["tiny"] == tiny.fingerprint  # trained on rank 0 from data both ranks read: the same weights
        assert o["num"] == 1438 and torch.equal(o["kept"], ref["features_for_kid_pr"])
        assert torch.allclose(o["mu"], ref["mu"], rtol=1e-10, atol=1e-10)
        assert torch.allclose(o["sigma"], ref["sigma"], rtol=1e-9, atol=1e-9)
        for got in (o["full"], o["local"]):
            assert got.keys() == single.keys()
            for k in single:
                assert got[k] == pytest.approx(single[k], rel=1e-6, abs=1e-9), k
        assert torch.equal(o["gen"], gen) and torch.equal(o["gen_labels"], gen_labels)
    assert outs[0]["full"] == outs[1]["full"] and outs[0]["local"] == outs[1]["local"]
    assert len(list(fresh.glob("reference-*.pt"))) == 1 and len(list(fresh.glob("classifier-*.pt"))) == 1
