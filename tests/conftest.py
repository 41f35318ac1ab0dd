import pytest

import sparring


@pytest.fixture(autouse=True)
def _quiet_gymnasium_warnings(recwarn):
    yield
