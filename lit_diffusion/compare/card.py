"""The protocol card of each comparison score (evaluation.protocol.ProtocolCard, issue 12 item 2): evaluator and
its weights, reference set and its statistics, samples, sampler, grid, NFE, guidance, EMA profile, seeds, command;
stored with the score in RUN/eval.json, and in report.md as one card of the shared fields plus a table of the
fields that differ between rows."""
from __future__ import annotations

import shlex
import sys


def ema_profile(module, sigma_rel: float | None = None) -> str:
    """The EMA the scored network is: a post-hoc reconstruction, EDM2's power function, or a classic decay."""
    if sigma_rel is not None:
        return f"post-hoc EMA, power function sigma_rel={sigma_rel:g} (EDM2 sec. 3.2)"
    ema = getattr(module, "ema", None)
    if ema is None:
        return "none"
    if getattr(ema, "sigma_rel", None) is not None:
        return f"power-function EMA sigma_rel={ema.sigma_rel:g} (EDM2)"
    return f"EMA decay={ema.decay:g}"


def suite_command(suite) -> str:
    return f"lit-diffusion compare -c {shlex.quote(suite.source)}" if suite.source else shlex.join(sys.argv)


def protocol_card(suite, metrics: list, reference, setting, module, num_samples: int, untrained: bool = False,
                  sigma_rel: float | None = None) -> dict:
    """The card of one score, as a flat JSON-ready dict: the evaluator and reference of the first metric (the one
    that ranks), and under "metrics" every metric's fingerprint (its feature network's included)."""
    from lit_diffusion.evaluation.protocol import ProtocolCard

    guidance = getattr(module, "guidance", None)
    ema = "untrained network (no EMA)" if untrained else ema_profile(module, sigma_rel)
    net = metrics[0].feature_net
    card = ProtocolCard.from_evaluation(net, reference.stats(net), num_generated=num_samples, sampler=setting.sampler,
                                        grid=setting.grid, nfe=setting.nfe, guidance=guidance, ema=ema,
                                        x0_threshold=module.sample_options.get("x0_threshold"),
                                        seeds=list(suite.seeds), command=suite_command(suite))
    return card.as_dict() | {"metrics": {m.name: m.fingerprint for m in metrics}}


def shared_and_varying(cards: list[dict]) -> tuple[dict, list[str]]:
    """The fields equal on every card, and the names of those that differ (in first-card order)."""
    if not cards:
        return {}, []
    keys = list(cards[0]) + [k for c in cards[1:] for k in c if k not in cards[0]]
    varying = [k for k in dict.fromkeys(keys) if len({repr(c.get(k)) for c in cards}) > 1]
    return {k: v for k, v in cards[0].items() if k not in varying}, varying


def card_markdown(shared: dict) -> list[str]:
    lines = ["| protocol | value |", "|---|---|"]
    return lines + [f"| {k} | {_cell(k, v)} |" for k, v in shared.items()]


def _cell(key: str, value) -> str:
    if value is None or value == [] or value == {}:
        return "–"
    if isinstance(value, dict):  # the metrics' fingerprints
        return ", ".join(f"{k}: `{v}`" for k, v in value.items())
    return f"`{value}`" if key == "command" else str(value)
