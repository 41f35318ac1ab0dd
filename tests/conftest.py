import pytest

import sparring  # noqa: F401  (registers the games)


@pytest.fixture(autouse=True)
def _quiet_gymnasium_warnings(recwarn):
    yield
