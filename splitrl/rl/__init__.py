"""RL parts shared by the worlds: RLModules, distributions, schedules, PPO settings, checkpoints."""
