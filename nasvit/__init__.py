"""nasvit: neural architecture search of efficient hybrid CNN/ViT image models.

Packages: ``search_space`` (spaces, subnet configs, cost model; no torch), ``supernet`` (the elastic
network and its static twins), ``evolve`` (evolutionary searchers) and this one (recipes and CLI).

Importing it registers ``nasvit_min``, ``nasvit_max`` and ``nasvit_subnet`` with timm (once timm is imported, in
either order, so that importing nasvit stays fast): ``timm.create_model("nasvit_subnet", export_dir=DIR,
pretrained=True)`` (see
:mod:`supernet.timm_models` and :mod:`nasvit.export.timm_registration`).
"""

from nasvit.export.timm_registration import register_when_timm_is_imported

register_when_timm_is_imported()

__version__ = "0.1.0"


def load_model(directory, inference: bool = False):
    """The exported model in ``directory``; with ``inference`` its faster inference form
    (see :func:`nasvit.export.directory.load_model`)."""
    from nasvit.export.directory import load_model as load

    return load(directory, inference)
