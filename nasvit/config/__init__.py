"""The typed configs of the recipes: how YAML becomes a frozen dataclass (``loading``) and the schemas of training
(``train``), search (``search``) and fine-tuning (``finetune``). The data and evolve sections have their own schemas
beside their code (``nasvit.data.config``, ``evolve.config``)."""
