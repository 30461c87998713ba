"""Fixtures shared by the Volteras client's tests (against `httpx.MockTransport`
and against the sandbox)."""

import pytest


class Sleeps(list):
    """Stands in for `time.sleep`: keeps each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()
