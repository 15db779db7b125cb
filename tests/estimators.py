"""Estimators for tests/test_estimator.py: a module outside sklearn (so importing it needs
--allow-import tests) with deliberately broken or instrumented classifiers."""
from sklearn.linear_model import SGDClassifier


class InvertedUpdates(SGDClassifier):
    """Fits correctly, but every partial_fit learns the labels inverted: each continuous update
    makes a clearly worse model, which the evaluation gate must reject."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        return super().partial_fit(X, -y, classes=classes, sample_weight=sample_weight)


class CountingSGD(SGDClassifier):
    """SGDClassifier that counts its predict calls and rows (class-level tallies, reset by the test)."""
    calls = 0
    rows = 0

    def predict(self, X):
        type(self).calls += 1
        type(self).rows += len(X)
        return super().predict(X)
