"""Shared helpers: fixture paths and example models."""

import json
from pathlib import Path

import pytest
import yaml

from planner.specs import ModelSpec

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = ROOT / "examples"


def fixture(name: str):
    """A JSON fixture from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text())


def example(name: str) -> ModelSpec:
    """A bundled example model."""
    return ModelSpec.from_hf_config(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()), name)


def reference_model(config_file: str) -> ModelSpec:
    """A model from the reference configs (tests/fixtures/reference/configs)."""
    data = json.loads((FIXTURES / "reference" / config_file).read_text())
    return ModelSpec.from_hf_config(data, Path(config_file).stem)


@pytest.fixture
def llama13b() -> ModelSpec:
    return example("llama2-13b")
