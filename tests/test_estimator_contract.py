"""Every Pippin estimator follows scikit-learn's parameter conventions (STYLE.md section 4)."""

import pytest

from pippin.audio import SoundClassifier
from pippin.audio.errors import AudioError
from pippin.datasets.errors import DatasetError
from pippin.recommend import ItemSimilarityRecommender
from pippin.recommend.errors import RecommendError

ESTIMATORS = [(SoundClassifier, AudioError), (ItemSimilarityRecommender, RecommendError)]


@pytest.mark.parametrize("cls, error", ESTIMATORS, ids=lambda x: getattr(x, "__name__", ""))
def test_params_round_trip_and_nothing_learned_before_fit(cls, error):
    est = cls()
    params = est.get_params()
    assert params and all(not name.endswith("_") for name in params)
    assert not [a for a in vars(est) if a.endswith("_") and not a.startswith("_")]
    clone = cls(**params)
    assert clone.get_params() == params
    name = next(iter(params))
    assert est.set_params(**{name: params[name]}) is est
    assert repr(est).startswith(f"{cls.__name__}(") and f"{name}=" in repr(est)
    with pytest.raises(error, match="unknown parameter 'no_such_thing'"):
        est.set_params(no_such_thing=1)


@pytest.mark.parametrize("cls, error", ESTIMATORS, ids=lambda x: getattr(x, "__name__", ""))
def test_fit_is_the_verb_and_constructors_are_keyword_only(cls, error):
    import inspect

    assert callable(getattr(cls, "fit", None))
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), params
    with pytest.raises(TypeError):
        cls(1)


def test_sound_classifier_train_is_a_deprecated_alias_of_fit(tmp_path):
    clf = SoundClassifier(progress=False)
    with pytest.warns(DeprecationWarning, match="use fit"), pytest.raises(DatasetError, match="missing"):
        clf.train(tmp_path / "missing")  # the alias warns, then fails exactly as fit does
