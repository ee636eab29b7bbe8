"""Typed comparison results: settings spelled as suites spell them, and the table's aggregation."""
from lit_diffusion.compare.aggregate import fmt, summarise
from lit_diffusion.compare.results import ScoreRow, Setting


def test_setting_spelling():
    s = Setting.from_suite("heun:uniform", 3)
    assert (s.sampler, s.grid, s.nfe, s.sampler_key, s.label) == ("heun", "uniform", 3, "heun:uniform", "heun:uniform@3")
    assert Setting.from_suite("euler", 4).label == "euler@4"


def test_summary_means_over_seeds_best_and_winners():
    def row(obj, seed, key, nfe, fd, used=None, untrained=False):
        return ScoreRow(obj, seed, Setting.from_suite(key, nfe), untrained, {"fd": fd, "kid": 0.0}, used or nfe)

    scores = [row("a", 0, "euler", 1, 5.0), row("a", 0, "euler", 4, 2.0), row("a", 1, "euler", 1, 7.0),
              row("a", 1, "euler", 4, 4.0), row("a", 0, "euler", 4, 9.0, untrained=True),
              row("a", 1, "euler", 4, 8.0, untrained=True),
              row("b", 0, "heun", 3, 1.0, used=2), row("b", 1, "heun", 3, 3.0, used=2),
              row("b", 0, "heun", 3, 9.5, used=2, untrained=True), row("b", 1, "heun", 3, 9.5, used=2, untrained=True)]
    summary = summarise(["a", "b"], [0, 1], scores)
    assert [(r.objective, r.nfe, r.fd) for r in summary.rows] == [("a", 1, [5.0, 7.0]), ("a", 4, [2.0, 4.0]),
                                                                  ("b", 2, [1.0, 3.0])]
    assert summary.best["a"].setting.label == "euler@4" and summary.best["b"].mean_fd == 2.0
    assert {n: w.objective for n, w in summary.winners.items()} == {1: "a", 4: "a", 2: "b"}
    assert [u.fd for u in summary.untrained["a"]] == [9.0, 8.0]
    assert fmt([1.0]) == "1.000" and fmt([1.0, 3.0]) == "2.000 ± 1.414"
