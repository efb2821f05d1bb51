"""splitrl: a Ray-based platform for training and comparing split-inference agents at the mobile edge.

``import splitrl`` registers every world's gymnasium ids (string entry points: no world is
imported until an env is made), so ``gymnasium.make("splitrl/LyaPPO-v0")`` works, and keeps the
import paths of older versions loadable (:mod:`splitrl.compat`).
"""

from splitrl import compat as _compat
from splitrl import worlds as _worlds

_compat.install()
for _name in _worlds.names():
    _worlds.get(_name).register_gym_envs()
