"""The model level: rules that initialize or re-initialize whole models.

``jaxinit.initialize(target, rules, key)`` draws every parameter of a Flax
NNX / linen or Equinox model (or a pytree) that a rule matches;
``jaxinit.reinit`` does it to a trained model and leaves every other leaf
bit-identical. Rules are data (:mod:`~jaxinit.rules.patterns`), fans come
from the modules (:mod:`~jaxinit.rules.fans`), keys from the parameters'
paths (:mod:`~jaxinit.rules.keys`); targets are walked by
:mod:`~jaxinit.rules.targets`.

Modules: ``patterns`` (rules and rule sets), ``fans`` (module fan registry),
``keys`` (path keys and the pure ``draw``), ``targets`` (walking models),
``api`` (the verbs), ``schemes`` (published schemes as rule sets),
``transfer`` (checkpoints into changed models).
"""

from jaxinit.rules.api import (Assignment, Plan, Unmatched, UnusedRuleWarning, initialize, labels,
                               plan, reinit)
from jaxinit.rules.fans import Fans, ModuleSpec, einsum_fans, register_module, with_fans
from jaxinit.rules.keys import draw, param_key, path_hash
from jaxinit.rules.patterns import Glob, OfModule, Rule, RuleSet, as_rule_set
from jaxinit.rules import schemes
from jaxinit.rules.transfer import CollectionReport, TransferReport, load_params, save_params, transfer

__all__ = [
    "initialize", "reinit", "plan", "labels", "Plan", "Assignment", "Unmatched",
    "UnusedRuleWarning",
    "Rule", "RuleSet", "Glob", "OfModule", "as_rule_set",
    "Fans", "ModuleSpec", "register_module", "with_fans", "einsum_fans",
    "draw", "param_key", "path_hash",
    "schemes", "transfer", "TransferReport", "CollectionReport", "load_params", "save_params",
]
