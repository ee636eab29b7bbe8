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
    assert [(r.objective, r.nfe, r.score) for r in summary.rows] == [("a", 1, [5.0, 7.0]), ("a", 4, [2.0, 4.0]),
                                                                  ("b", 2, [1.0, 3.0])]
    assert summary.best["a"].setting.label == "euler@4" and summary.best["b"].mean_score == 2.0
    assert {n: w.objective for n, w in summary.winners.items()} == {1: "a", 4: "a", 2: "b"}
    assert [u.score for u in summary.untrained["a"]] == [9.0, 8.0]
    assert fmt([1.0]) == "1.000" and fmt([1.0, 3.0]) == "2.000 ± 1.414"


def _row(obj, seed, key, nfe, fd, low, high):
    return ScoreRow(obj, seed, Setting.from_suite(key, nfe), False, {"fd": fd, "kid": 0.0, "fd_low": low,
                                                                      "fd_high": high}, nfe)


def test_winner_only_where_intervals_separate_else_tie():
    scores = [  # NFE 1: a's interval [1, 2] lies below b's [3, 4] -> a wins
        _row("a", 0, "euler", 1, 1.5, 1.0, 2.0), _row("b", 0, "euler", 1, 3.5, 3.0, 4.0),
        # NFE 4: a 2.0 [1.5, 2.6] overlaps b 2.4 [2.5, 3.0] -> tie, although a's mean is lower
        _row("a", 0, "euler", 4, 2.0, 1.5, 2.6), _row("b", 0, "euler", 4, 2.4, 2.5, 3.0),
        # NFE 8: b's second sampler overlaps a but its best (heun) does not -> the objectives' best rows decide
        _row("a", 0, "euler", 8, 1.0, 0.9, 1.1), _row("b", 0, "euler", 8, 1.2, 1.05, 1.3),
        _row("b", 0, "heun", 8, 1.15, 1.12, 1.2)]
    summary = summarise(["a", "b"], [0], scores)
    assert summary.verdict(1) == "a (euler)"
    assert summary.verdict(4) == "tie: a (euler), b (euler)"
    assert summary.verdict(8) == "a (euler)"
    alone = summarise(["a", "b"], [0], scores + [_row("a", 0, "euler", 16, 1.0, 0.5, 1.5)])
    assert alone.verdict(16) == "a (euler), the only objective at this NFE"


def test_seeds_give_mean_std_and_the_union_of_their_intervals():
    scores = [_row("a", 0, "euler", 2, 1.0, 0.8, 1.2), _row("a", 1, "euler", 2, 3.0, 2.7, 3.4),
              _row("b", 0, "euler", 2, 5.0, 4.9, 5.1), _row("b", 1, "euler", 2, 5.2, 5.0, 5.4)]
    summary = summarise(["a", "b"], [0, 1], scores)
    a = summary.best["a"]
    assert fmt(a.score) == "2.000 ± 1.414" and a.interval == (0.8, 3.4)
    assert summary.verdict(2) == "a (euler)"  # 3.4 < 4.9: separated even over both seeds
    scores[1] = _row("a", 1, "euler", 2, 3.0, 2.7, 4.95)  # one seed reaching into b's interval: a tie
    assert summarise(["a", "b"], [0, 1], scores).verdict(2) == "tie: a (euler), b (euler)"


def test_without_intervals_no_winner_is_declared_between_objectives():
    rows = [ScoreRow(o, 0, Setting.from_suite("euler", 1), False, {"fd": fd, "kid": 0.0}, 1) for o, fd in
            (("a", 1.0), ("b", 9.0))]
    assert summarise(["a", "b"], [0], rows).verdict(1) == "tie: a (euler), b (euler)"
