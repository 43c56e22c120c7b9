"""cluster.yaml passes Ray's own cluster-config validation (schema + launcher checks), offline."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


def _load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_is_valid_for_the_ray_launcher():
    cfg = prepare_config(_load())  # merges the AWS defaults like `ray up` does, no cloud calls
    validate_config(cfg)
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = types["gpu_worker"]
    assert gpu["node_config"]["IamInstanceProfile"]["Arn"]
    setup = " ".join(gpu["worker_setup_commands"])
    assert "torch==2.13.0" in setup and "download.pytorch.org/whl/cu" in setup and "/mnt/mdpt" in setup
    for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]):
        assert "MDPT_DATA=/mnt/mdpt" in cmds[-1]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(unknown_top_level_key=1),
        lambda c: c["available_node_types"]["gpu_worker"].update(resources={"CPU": 0.5}),
        lambda c: c.update(head_node_type="no_such_type"),
    ],
    ids=["unknown-key", "fractional-resource", "bad-head-type"],
)
def test_validation_rejects_broken_variants(mutate):
    cfg = copy.deepcopy(_load())
    mutate(cfg)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        validate_config(prepare_config(cfg))
