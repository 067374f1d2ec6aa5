from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the project's sibling ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def warc_dir(shared_data) -> Path:
    return shared_data / "warc"
