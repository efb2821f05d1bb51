"""The simulated world and the MDPs on it (physics in numpy, SI units)."""

import gymnasium as gym

LYAPPO_ENV_ID = "splitrl/LyaPPO-v0"

if LYAPPO_ENV_ID not in gym.registry:
    gym.register(id=LYAPPO_ENV_ID, entry_point="splitrl.envs.lyappo:LyaPPOEnv")
