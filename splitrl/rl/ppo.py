"""PPO's ``algorithm`` keys (shared by the worlds that train with PPO) and RLlib's training arguments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from splitrl.core.schema import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Schedulable, Section, key


class PPOSection(Section):
    """The ``algorithm`` keys of an RLlib PPO learner; a world subclasses it with its defaults."""

    name: str = key("", "the algorithm (one of the world's; default: its first)")
    hidden: list[PositiveInt] = key([128, 128], "actor and critic MLP widths", min_length=1)
    activation: Literal["tanh", "relu"] = key("tanh", "activation of the MLPs")
    lr: PositiveFloat = key(3.0e-4, "Adam learning rate")
    gamma: PositiveFloat = key(0.99, "discount", le=1)
    lambda_: NonNegativeFloat = Field(
        0.95, alias="lambda", le=1, description="GAE lambda", json_schema_extra={"unit": "", "type": ""}
    )
    clip: PositiveFloat = key(0.2, "PPO clip epsilon")
    entropy_coeff: Schedulable = key(
        0.0,
        "entropy bonus, or a schedule [[0, v0], [env_step, v1], ...] over sampled env steps (linear in between)",
        type="float >= 0 | schedule",
    )
    vf_loss_coeff: NonNegativeFloat = key(0.5, "value-loss weight")
    vf_clip: PositiveFloat = key(
        1.0e6,
        "value-loss clip (off in practice: RLlib zeroes the critic gradient beyond it, and early returns are large)",
    )
    grad_clip: PositiveFloat | None = key(100.0, "global gradient-norm clip per module (null: none; Adam alone)")
    reward_scale: PositiveFloat = key(0.01, "rewards seen by the learner are multiplied by this")
    train_batch_size: PositiveInt = key(4000, "env steps per training iteration")
    minibatch_size: PositiveInt = key(128, "SGD minibatch (env steps)")
    num_epochs: PositiveInt = key(10, "SGD passes per iteration")
    seed: NonNegativeInt = key(0, "seeds torch, the env runners and the envs")

    def model_dump(self, **kwargs):  # `lambda` is the YAML and MLflow name of lambda_
        return super().model_dump(by_alias=True, **kwargs)


def check_minibatch(alg: dict) -> None:
    from splitrl.core.errors import ConfigError

    if alg["minibatch_size"] > alg["train_batch_size"]:
        raise ConfigError(
            "algorithm.minibatch_size",
            f"must be <= algorithm.train_batch_size ({alg['train_batch_size']}), got {alg['minibatch_size']}",
        )


def ppo_training(alg: dict) -> dict:
    """``PPOConfig.training`` arguments from a resolved ``algorithm`` section."""
    return dict(
        lr=alg["lr"],
        gamma=alg["gamma"],
        lambda_=alg["lambda"],
        clip_param=alg["clip"],
        entropy_coeff=alg["entropy_coeff"],
        vf_loss_coeff=alg["vf_loss_coeff"],
        vf_clip_param=alg["vf_clip"],
        grad_clip=alg["grad_clip"],
        train_batch_size_per_learner=alg["train_batch_size"],
        minibatch_size=alg["minibatch_size"],
        num_epochs=alg["num_epochs"],
        use_kl_loss=False,
    )


def central_ppo_config(cfg: dict, *, env, env_config: dict, probe, model_config: dict, callbacks):
    """RLlib PPO for one central agent (:class:`~splitrl.rl.central.CentralPPOModule`) sampling a
    batched vector env (``env``, RLlib's ``vector_entry_point``; ``probe`` a single env giving the
    spaces), with the platform's schedulable learner and ``resources`` section."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from splitrl.rl.central import CentralPPOModule
    from splitrl.rl.schedules import ScheduledPPOTorchLearner

    alg, res = cfg["algorithm"], cfg["resources"]
    spec = RLModuleSpec(
        module_class=CentralPPOModule,
        observation_space=probe.observation_space,
        action_space=probe.action_space,
        model_config=model_config,
    )
    return (
        PPOConfig()
        .environment(env=env, env_config=env_config, normalize_actions=False, clip_actions=False)
        .env_runners(
            num_env_runners=res["num_env_runners"],
            num_envs_per_env_runner=res["num_envs_per_env_runner"],
            gym_env_vectorize_mode="vector_entry_point",
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0, learner_class=ScheduledPPOTorchLearner)
        .rl_module(rl_module_spec=spec)
        .callbacks(callbacks)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
        .training(**ppo_training(alg))
    )
