"""Fixtures of the fault tests: small real shards built through the real data CLI (as tests/training)."""
import pytest

from lit_diffusion.cli import main as cli_main


@pytest.fixture(scope="session")
def digits_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits16")
    assert cli_main(["data", "build", "digits", "--out", str(out), "--resolution", "16", "--no-progress", "--workers", "0",
                     "--overwrite"]) == 0
    return out
