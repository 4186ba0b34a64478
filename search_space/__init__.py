"""Search spaces of hybrid CNN/ViT networks, subnet configs and their analytical cost. No torch here.

from search_space import load_space, SubnetConfig
space = load_space("nasvit")
cfg = space.sample(random.Random(0))
space.cost(cfg).macs

Modules depend in one line, each only on those before it: errors, arithmetic <- spec <- subnet <- plan <- cost
<- space <- loader, serialize.
"""

from search_space.cost import COST_METRICS, Cost
from search_space.errors import SpaceError
from search_space.loader import available_spaces, config_dir, load_space, load_subnet, parse_space
from search_space.plan import SubnetPlan, plan_subnet
from search_space.serialize import space_fingerprint, space_to_dict
from search_space.space import Gene, SearchSpace, format_count, within
from search_space.spec import NormKind, ScaleLayout, SpaceDefinition, StageKind, StageSpec
from search_space.subnet import StageChoice, SubnetConfig

__all__ = [
    "COST_METRICS",
    "Cost",
    "Gene",
    "NormKind",
    "ScaleLayout",
    "SearchSpace",
    "SpaceDefinition",
    "SpaceError",
    "StageChoice",
    "StageKind",
    "StageSpec",
    "SubnetConfig",
    "SubnetPlan",
    "available_spaces",
    "config_dir",
    "format_count",
    "load_space",
    "load_subnet",
    "parse_space",
    "plan_subnet",
    "space_fingerprint",
    "space_to_dict",
    "within",
]
