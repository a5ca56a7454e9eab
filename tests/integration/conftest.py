import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402

import gh  # noqa: E402


@pytest.fixture
def origin():
    o = gh.Origin()
    yield o
    o.stop()


@pytest.fixture
def origin2():
    o = gh.Origin()
    yield o
    o.stop()


@pytest.fixture
def ports():
    return [gh.free_port() for _ in range(4)]


@pytest.fixture
def netns():
    """Run the test inside a new network namespace with only `lo` up (see
    gh.NetNS).  List it first among the test's fixtures."""
    ns = gh.NetNS().enter()
    yield ns
    ns.exit()
