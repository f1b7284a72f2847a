"""Model families for horizontal federated learning, in plain torch.

``mlp`` (tables), ``cnn`` (small images), ``resnet18/34/50``, ``densenet121/201``
and ``vit_tiny/small``; :func:`build_model` builds one from a :class:`ModelSpec`,
:func:`get_weights` / :func:`set_weights` move its ``state_dict`` (buffers
included) to and from numpy for aggregation.
"""

from jointly.learn.horizontal.models.registry import (
    FAMILIES,
    Family,
    ModelSpec,
    build_model,
    count_parameters,
    get_weights,
    set_weights,
)

__all__ = ["FAMILIES", "Family", "ModelSpec", "build_model", "count_parameters", "get_weights", "set_weights"]
