"""Metrics against values worked out by hand on small arrays."""

from __future__ import annotations

import math

import pytest

from fakescope.metrics import compute_metrics, equal_error_rate, mean_metrics, video_scores


def test_hand_computed_values():
    # labels: 0 0 0 1 1 1 ; scores chosen so that exactly one pair is mis-ordered
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.4, 0.7, 0.35, 0.8, 0.9]
    m = compute_metrics(labels, scores)
    # AUC: 9 (fake, real) pairs; fake 0.35 ranks below real 0.4 and 0.7 -> 7/9 correctly ordered
    assert m["auc"] == pytest.approx(7 / 9)
    # AP (fake positive), ranking 0.9+ 0.8+ 0.7- 0.4- 0.35+ 0.1-:
    # precision at each positive: 1/1, 2/2, 3/5 -> mean = (1 + 1 + 0.6) / 3
    assert m["ap"] == pytest.approx((1 + 1 + 0.6) / 3)
    # threshold 0.5: predictions 0 0 1 0 1 1 -> 4/6 correct; real 2/3, fake 2/3
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["real_acc"] == pytest.approx(2 / 3)
    assert m["fake_acc"] == pytest.approx(2 / 3)
    assert m["n"] == 6
    # EER: at threshold 0.7 -> FPR 1/3 (0.7), FNR 1/3 (0.35): they cross at 1/3
    assert m["eer"] == pytest.approx(1 / 3)
    assert "video_auc" not in m


def test_perfect_and_inverted_scores():
    y = [0, 0, 1, 1]
    perfect = compute_metrics(y, [0.1, 0.2, 0.8, 0.9])
    assert perfect["auc"] == 1.0 and perfect["ap"] == 1.0 and perfect["acc"] == 1.0 and perfect["eer"] == 0.0
    inverted = compute_metrics(y, [0.9, 0.8, 0.2, 0.1])
    assert inverted["auc"] == 0.0 and inverted["acc"] == 0.0 and inverted["eer"] == 1.0


def test_eer_interpolates_between_roc_points():
    # ROC points (fpr, tpr): (0,0) (0,.5) (.5,.5) (.5,1) (1,1); at (.5,.5) FNR = FPR = .5 -> EER .5
    assert equal_error_rate([0, 0, 1, 1], [0.2, 0.7, 0.6, 0.9]) == pytest.approx(0.5)
    # one real and one fake, tied scores: ROC (0,0) -> (1,1): crossing at 0.5 by interpolation
    assert equal_error_rate([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_threshold_is_inclusive():
    m = compute_metrics([0, 1], [0.5, 0.5], threshold=0.5)
    assert m["real_acc"] == 0.0 and m["fake_acc"] == 1.0


def test_one_class_gives_undefined_auc():
    m = compute_metrics([1, 1, 1], [0.2, 0.6, 0.9])
    assert m["auc"] is None and m["ap"] is None and m["eer"] is None and m["real_acc"] is None
    assert m["fake_acc"] == pytest.approx(2 / 3)


def test_video_auc_groups_by_full_id_not_basename():
    # two different videos share the basename "000": Deepfakes/000 (fake) and original/000 (real)
    labels = [1, 1, 0, 0, 1, 1, 0, 0]
    scores = [0.9, 0.7, 0.2, 0.4, 0.3, 0.5, 0.6, 0.6]
    vids = ["Deepfakes/000", "Deepfakes/000", "original/000", "original/000",
            "Face2Face/001", "Face2Face/001", "original/001", "original/001"]
    m = compute_metrics(labels, scores, vids)
    # video means: DF/000 .8 (fake), orig/000 .3 (real), F2F/001 .4 (fake), orig/001 .6 (real)
    # pairs (fake, real): (.8,.3) ok (.8,.6) ok (.4,.3) ok (.4,.6) wrong -> 3/4
    assert m["n_videos"] == 4
    assert m["video_auc"] == pytest.approx(0.75)
    # grouping by basename would have merged real and fake frames: the helper refuses mixed labels
    with pytest.raises(ValueError, match="different labels"):
        video_scores(scores, labels, [v.split("/")[1] for v in vids])


def test_video_scores_are_means_in_first_seen_order():
    s, y, ids = video_scores([0.2, 0.4, 1.0], [0, 0, 1], ["a", "a", "b"])
    assert ids == ["a", "b"] and list(y) == [0, 1] and s.tolist() == pytest.approx([0.3, 1.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="length"):
        compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0, 1], [0.5, math.nan])


def test_mean_over_sets():
    a = {"n": 4, "auc": 1.0, "acc": 0.5}
    b = {"n": 6, "auc": 0.5, "acc": 1.0}
    c = {"n": 2, "auc": None, "acc": 1.0}
    assert mean_metrics({"a": a, "b": b}) == {"auc": 0.75, "acc": 0.75, "n": 10}
    assert mean_metrics({"a": a, "c": c})["auc"] is None
