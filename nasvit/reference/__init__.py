"""The released NASViT supernet (facebookresearch/NASViT, commit 0472916) in nasvit's formats.

One concept per module: :mod:`~nasvit.reference.loading` reads a reference checkpoint without executing code,
:mod:`~nasvit.reference.mapping` maps its tensors name by name onto a :class:`supernet.Supernet` of the
``nasvit_official`` space, :mod:`~nasvit.reference.subnet` converts subnet dicts both ways, and
:mod:`~nasvit.reference.convert` writes the converted nasvit checkpoint. The reference code itself is not needed.
"""
